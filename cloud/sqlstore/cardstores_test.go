package sqlstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// TestRolledBackBatchLeavesNoCardSeen defends the list of a store's cards
// (GET /v1/snapshots) against the cache of cards seen at a store: a batch
// that the invariant check rolls back must not leave its cards in the
// cache, or the next batch with a card known elsewhere (here at store s2)
// would not record it at this store, and the store's terminals would
// never get its snapshot.
func TestRolledBackBatchLeavesNoCardSeen(t *testing.T) {
	ctx := context.Background()
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			tl, other := storetest.NewTill(t, s, "t1", "s1"), storetest.NewTill(t, s, "t2", "s2")
			tampered, traveller := storetest.Card(1), storetest.Card(2)
			tl.Send(t, s, tl.Earn(tampered, 1000, 10))
			other.Send(t, s, other.Earn(traveller, 1000, 10))
			no, err := s.NumberOf(ctx, cloud.CardOwner(tampered))
			if err != nil {
				t.Fatal(err)
			}
			const lots = `UPDATE lots SET remaining = remaining + ? WHERE owner_no = ?`
			execRaw(t, s, lots, 1, no)
			next := tl.Seal(tl.Earn(traveller, 1000, 10), tl.Earn(tampered, 1000, 10))
			if _, err := s.Apply(ctx, next); !errors.Is(err, cloud.ErrInvariant) {
				t.Fatalf("apply over a tampered lot: %v, want ErrInvariant", err)
			}
			execRaw(t, s, lots, -1, no)
			if _, err := s.Apply(ctx, next); err != nil {
				t.Fatalf("apply once repaired: %v", err)
			}
			snaps, err := s.Snapshots(ctx, "s1", loyalty.CardHash{}, 10, storetest.Start())
			if err != nil {
				t.Fatal(err)
			}
			var listed []loyalty.CardHash
			for _, sn := range snaps {
				listed = append(listed, sn.Card)
			}
			if !slices.Contains(listed, traveller) || !slices.Contains(listed, tampered) {
				t.Errorf("store s1 lists cards %v, want both %v and %v", listed, tampered, traveller)
			}
		})
	}
}
