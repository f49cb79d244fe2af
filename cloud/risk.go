package cloud

import (
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// AllowancePolicy is the risk the cloud accepts per member while a store
// cannot reach it: the escrow in each snapshot's Allowance. The till
// enforces it, per card; the ledger honours every offline redeem anyway
// and books any excess to debt and the store's shortfall.
//
// The policy: a card no member holds, or a member in debt, or one with an
// overspend within OverspendCooldown gets no allowance (zero points). Any
// other member may redeem offline up to Percent of the available balance
// that does not lapse within TTL, at most MaxPoints, for TTL after the
// snapshot. A member's cards share one balance but the till holds an
// allowance per card, so the member's allowance is split evenly between
// all the member's cards: whichever of them the store's tills hold, the
// sum stays within it.
type AllowancePolicy struct {
	Percent           int64          // of the available balance, 0..100
	MaxPoints         loyalty.Points // cap per member and store, split like the rest
	TTL               time.Duration  // how long an allowance is valid
	OverspendCooldown time.Duration  // no allowance after an overspend for this long
}

// DefaultAllowancePolicy returns the default policy: 50% of the balance, at
// most 2,000 points, for 24 hours; none for 30 days after an overspend.
func DefaultAllowancePolicy() AllowancePolicy {
	return AllowancePolicy{
		Percent:           50,
		MaxPoints:         2000,
		TTL:               24 * time.Hour,
		OverspendCooldown: 30 * 24 * time.Hour,
	}
}

// Allowance decides a card's offline allowance from its snapshot. cards
// is how many cards the card's member holds (below 1 counts as 1);
// lapsing is what of the balance lapses before now+TTL, overdue lots
// included (the snapshot's Expiring list keeps only a few dates, so it
// cannot say); lastOverspend is the time of the card's owner's latest
// overspend (zero when none).
func (p AllowancePolicy) Allowance(s loyalty.Snapshot, cards int, lapsing loyalty.Points, lastOverspend, now time.Time) *loyalty.Allowance {
	a := &loyalty.Allowance{Expires: now.Add(p.TTL)}
	if s.Member == "" || s.Debt > 0 || s.Balance <= 0 {
		return a
	}
	if !lastOverspend.IsZero() && now.Sub(lastOverspend) < p.OverspendCooldown {
		return a
	}
	// Points that lapse while the allowance holds are not there to spend
	// when the till honours it.
	spendable := max(s.Balance-lapsing, 0)
	pts := min(spendable*loyalty.Points(p.Percent)/100, p.MaxPoints)
	a.Points = pts / loyalty.Points(max(cards, 1))
	return a
}
