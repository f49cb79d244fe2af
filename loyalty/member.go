package loyalty

import "time"

// MemberID identifies a member of the program in the cloud ledger.
type MemberID string

// Snapshot is what a terminal knows of a member's account: a copy the cloud
// signed at AsOf. Between snapshots the terminal adds its own unacknowledged
// operations to Balance (the local view).
type Snapshot struct {
	Card    CardHash `json:"card"`
	Member  MemberID `json:"member"`
	Balance Points   `json:"balance"`
	// Debt is what the member owes from offline redemptions that exceeded
	// the balance; future earns repay it first.
	Debt Points `json:"debt,omitempty"`
	Tier string `json:"tier,omitempty"`
	// NextTier and ToNextTier tell the receipt "120 points to Gold".
	NextTier   string           `json:"next_tier,omitempty"`
	ToNextTier Points           `json:"to_next_tier,omitempty"`
	Expiring   []ExpiringPoints `json:"expiring,omitempty"`
	// Allowance is what this card may redeem at this store while the
	// terminal cannot reach the cloud; nil until the cloud issues one.
	Allowance *Allowance `json:"allowance,omitempty"`
	AsOf      time.Time  `json:"as_of"`
}

// ExpiringPoints are points that lapse at a date unless used.
type ExpiringPoints struct {
	Points Points    `json:"points"`
	At     time.Time `json:"at"`
}

// Allowance is the cloud's offline escrow for one card at one store: the
// points it accepts the risk of the card redeeming without the cloud, until Expires.
type Allowance struct {
	Points  Points    `json:"points"`
	Expires time.Time `json:"expires"`
}

// Valid reports whether the allowance is usable at t.
func (a *Allowance) Valid(t time.Time) bool { return a != nil && t.Before(a.Expires) }
