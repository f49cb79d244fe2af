package sqlstore_test

import (
	"context"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// TestNewOwnerPassesOverATakenNumber defends the uniqueness of owner
// numbers, which lots name instead of their owner: a new owner whose
// first numbers are taken gets the next free one with its sign (negative
// for a held card, positive for a member), and its lots, balance and
// link stay its own. Without the check of taken numbers the insert of the
// owner fails on the unique index and every batch touching it with it.
func TestNewOwnerPassesOverATakenNumber(t *testing.T) {
	ctx := context.Background()
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
				t.Fatal(err)
			}
			card, member := storetest.Card(1), loyalty.MemberID("alice")
			held, linked := cloud.CardOwner(card), cloud.MemberOwner(member)
			hc, mc := sqlstore.CandidateNumber(held), sqlstore.CandidateNumber(linked)
			if hc >= 0 || mc <= 0 {
				t.Fatalf("candidates %d for a held card and %d for a member: want negative and positive", hc, mc)
			}
			squat := func(id string, no int64) {
				t.Helper()
				execRaw(t, s, `INSERT INTO owners (id, qualifying, last_overspend, created_at, avail, debt, no) VALUES (?, 0, 0, 0, 0, 0, ?)`, id, no)
			}
			squat("c:squatter-1", hc)
			squat("c:squatter-2", hc-1)
			squat("m:squatter-3", mc)

			tl := storetest.NewTill(t, s, "t1", "s1")
			tl.Send(t, s, tl.Earn(card, 1000, 10))
			if no, err := s.NumberOf(ctx, held); err != nil || no != hc-2 {
				t.Errorf("held card's number: %d, %v; want %d, the first free one below its candidate %d", no, err, hc-2, hc)
			}
			tl.Send(t, s, tl.Earn(card, 1000, 10), tl.Enroll(card, member), tl.Earn(card, 1000, 10), tl.Redeem(card, 5, false))
			if no, err := s.NumberOf(ctx, linked); err != nil || no != mc+1 {
				t.Errorf("member's number: %d, %v; want %d, the first free one above its candidate %d", no, err, mc+1, mc)
			}
			got, err := s.Snapshot(ctx, card, "s1", storetest.Start())
			if err != nil {
				t.Fatal(err)
			}
			if got.Member != member || got.Balance != 25 {
				t.Errorf("snapshot after the link: member %q, balance %d; want %q, 25", got.Member, got.Balance, member)
			}
			rep, err := s.Check(ctx)
			if err != nil {
				t.Fatalf("check: %v (%v)", err, rep.Problems)
			}
		})
	}
}
