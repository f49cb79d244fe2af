package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// A claim of a card-less purchase and the purchase's reversal, at the same
// time on PostgreSQL: they wrote no row in common, so both committed, and
// the card kept the points of a purchase that was returned (Check passed:
// every posting balanced). Now both touch the purchase's op row, so one
// of them fails to serialize and runs again seeing the other: the claim
// is refused, or the reversal takes the claimed points back. Here the
// claim waits (on the claims table, held by the test) after it read that
// the purchase is neither reversed nor claimed, and the reversal commits
// first. (Found by an adversarial review.)
func TestClaimRacingTheReversalOfItsPurchaseCreatesNoPoints(t *testing.T) {
	ctx := context.Background()
	l := postgresWithRules(t, sqlstore.Options{})
	tl := storetest.NewTill(t, l, "t1", "s1")
	buy := tl.Earn(loyalty.CardHash{}, 1000, 10)
	tl.Send(t, l, buy)
	card := storetest.Card(1)

	holder := holdTableLock(t, l, "claims")
	claimed := make(chan error, 1)
	go func() {
		_, err := l.Claim(ctx, buy.ID, card, "s1", tl.Now)
		claimed <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := holder.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND relation = 'claims'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the claim never waited for the claims table")
		}
	}
	a := tl.Send(t, l, tl.Reverse(buy)) // the customer returns the purchase
	if a.Results[0].Status != cloud.StatusApplied {
		t.Fatalf("reversal: %+v", a.Results[0])
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-claimed; !errors.Is(err, cloud.ErrNotClaimable) {
		t.Errorf("claim of a purchase reversed meanwhile: %v, want ErrNotClaimable", err)
	}
	if s, err := l.Snapshot(ctx, card, "s1", tl.Now); err != nil || s.Balance != 0 {
		t.Errorf("card after the claim and the reversal: balance %d (%v), want 0", s.Balance, err)
	}
}
