package loyalty

import (
	"errors"
	"fmt"
	"time"
)

// OpKind is what an operation does to a member's points.
type OpKind uint8

const (
	OpEnroll  OpKind = 1 // a new member signs up: a card is linked to a member
	OpEarn    OpKind = 2 // a basket earns points
	OpRedeem  OpKind = 3 // points are spent on a reward
	OpReverse OpKind = 4 // a void, return or cancellation undoes an earlier op
	OpAdjust  OpKind = 5 // a manual or system correction
)

func (k OpKind) String() string {
	switch k {
	case OpEnroll:
		return "enroll"
	case OpEarn:
		return "earn"
	case OpRedeem:
		return "redeem"
	case OpReverse:
		return "reverse"
	case OpAdjust:
		return "adjust"
	}
	return fmt.Sprintf("opkind(%d)", uint8(k))
}

// ParseOpKind is the inverse of OpKind.String.
func ParseOpKind(s string) (OpKind, error) {
	for k := OpEnroll; k <= OpAdjust; k++ {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown op kind %q", ErrInvalidOp, s)
}

// MarshalText writes the kind's name.
func (k OpKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind's name.
func (k *OpKind) UnmarshalText(b []byte) error {
	v, err := ParseOpKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ErrInvalidOp reports an operation that breaks the rules of its kind.
var ErrInvalidOp = errors.New("loyalty: invalid op")

// Op is one operation recorded in a terminal's journal and applied by the
// cloud ledger exactly once. Its identity is ID; within a terminal its
// order is (Epoch, Seq), which the journal assigns.
type Op struct {
	ID   OpID   `json:"id"`
	Kind OpKind `json:"kind"`

	Store    string `json:"store"`
	Terminal string `json:"terminal"`
	// Epoch increases whenever the terminal's journal loses continuity
	// (restored from a backup, replaced); Seq is gapless within an epoch.
	Epoch uint32 `json:"epoch"`
	Seq   uint64 `json:"seq"`

	// WallTime is the terminal's clock: recorded, never trusted for order.
	WallTime time.Time `json:"wall_time"`
	HLC      HLC       `json:"hlc"`

	// Card is the keyed hash of the card presented; zero for a purchase
	// made without a card (claimable later with the receipt's code).
	Card   CardHash `json:"card"`
	Member MemberID `json:"member,omitempty"`

	// Points is the signed change to the member's balance: positive for
	// earn, negative for redeem, the opposite of the reversed op for reverse.
	Points Points  `json:"points"`
	Basket *Basket `json:"basket,omitempty"`

	// Reverses names the op a reverse undoes.
	Reverses OpID `json:"reverses,omitzero"`
	// Reward names what a redeem was for.
	Reward string `json:"reward,omitempty"`
	// Reason explains an adjust.
	Reason string `json:"reason,omitempty"`

	Receipt string `json:"receipt,omitempty"`
	Cashier string `json:"cashier,omitempty"`
	// RulesVersion is the version of the rules an earn was computed with.
	RulesVersion uint32 `json:"rules_version"`
	// Offline is set when the terminal could not reach the cloud when it
	// made the op: an offline redeem is always honored by the ledger.
	Offline bool `json:"offline,omitempty"`
}

// Validate checks the fields every op needs and the rules of its kind. It
// does not check Seq, which the journal assigns.
func (o *Op) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s op %s: %s", ErrInvalidOp, o.Kind, o.ID, fmt.Sprintf(format, args...))
	}
	switch {
	case o.ID.IsZero():
		return bad("no op id")
	case o.Terminal == "" || len(o.Terminal) > MaxFieldLen:
		return bad("terminal id must be 1 to %d bytes", MaxFieldLen)
	case len(o.Store) > MaxFieldLen || len(o.Receipt) > MaxFieldLen || len(o.Cashier) > MaxFieldLen ||
		len(o.Member) > MaxFieldLen || len(o.Reward) > MaxFieldLen:
		return bad("a text field is longer than %d bytes", MaxFieldLen)
	case len(o.Reason) > 256:
		return bad("reason longer than 256 bytes")
	case hasNUL(o.Terminal, o.Store, string(o.Member), o.Reward, o.Reason, o.Receipt, o.Cashier):
		return bad("a text field holds a NUL character")
	case o.WallTime.IsZero():
		return bad("no wall time")
	case o.Points > MaxOpPoints || o.Points < -MaxOpPoints:
		return bad("moves %d points; one op moves at most %d", o.Points, MaxOpPoints)
	}
	if o.Kind != OpEarn && o.Basket != nil {
		return bad("only an earn carries a basket")
	}
	switch o.Kind {
	case OpEnroll:
		if o.Card.IsZero() || o.Points != 0 {
			return bad("an enroll links a card and moves no points")
		}
	case OpEarn:
		if o.Basket == nil {
			return bad("an earn needs its basket")
		}
		if err := o.Basket.Validate(); err != nil {
			return bad("%v", err)
		}
		if o.Points < 0 {
			return bad("an earn cannot take points away (%d); use reverse", o.Points)
		}
	case OpRedeem:
		if o.Card.IsZero() || o.Points >= 0 {
			return bad("a redeem needs a card and negative points")
		}
	case OpReverse:
		if o.Reverses.IsZero() {
			return bad("a reverse names the op it undoes")
		}
	case OpAdjust:
		if o.Card.IsZero() && o.Member == "" {
			return bad("an adjust needs a card or a member")
		}
		if o.Reason == "" {
			return bad("an adjust needs a reason")
		}
	default:
		return bad("unknown kind")
	}
	return nil
}
