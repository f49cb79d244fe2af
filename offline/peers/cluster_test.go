package peers_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/peers"
)

// Invariant 4: a card redeemed offline at till A cannot spend the same
// points again at B or C: B and C learn of A's redeem (by gossip, or by
// asking before a large redeem) and the store-wide cap holds.
func TestInvariant4_ThreeTillsShareOfflineRedeems(t *testing.T) {
	// Amounts are chosen so every assertion holds whether or not a query
	// beats the clock on a loaded machine: a redeem below the threshold
	// asks nobody, and one that finds no answer falls to the isolated cap.
	tills := newCluster(t, clusterOpts{n: 3, isolatedCap: 100, threshold: 101})
	a, b, c := tills[0], tills[1], tills[2]
	card := testCard(t, "2012345678903")
	const storeCap = 300

	_, opA, err := a.redeem(t, card, 100, storeCap)
	if err != nil {
		t.Fatalf("A redeems 100 of a 300 cap: %v", err)
	}
	for _, tl := range []*till{b, c} {
		waitFor(t, 10*time.Second, tl.id+" records A's redeem", func() bool { return tl.j.hasPeerOp(card, opA.ID) })
	}
	// B asks its peers before a redeem above the threshold, and knows A's
	// 100 in any case: 250 more is refused by the store cap, or by the
	// isolated cap should no peer answer in time.
	chk, _, err := b.redeem(t, card, 250, storeCap)
	if err == nil {
		t.Fatalf("B approved 250 after A's 100 under a 300 store cap (check %+v)", chk)
	}
	if !errors.Is(err, errStoreCap) && !errors.Is(err, peers.ErrIsolatedCapReached) {
		t.Fatalf("B's refusal: got %v, want the store cap or the isolated cap", err)
	}
	if chk.Redeemed < 100 {
		t.Errorf("B's check: got %d points known store-wide, want at least A's 100", chk.Redeemed)
	}
	got := b.j.peerOps(card)[opA.ID]
	want := peers.PeerRedeem{Op: opA.ID, Card: card, Points: 100, Terminal: a.id, Epoch: 1, Seq: opA.Seq, At: opA.WallTime.Truncate(time.Millisecond).UTC()}
	if got != want {
		t.Errorf("B's peer op: got %+v, want %+v", got, want)
	}

	// B knows A's 100; with A's and its own it reaches the store cap.
	if _, _, err := b.redeem(t, card, 201, storeCap); err == nil {
		t.Fatalf("B approved 201 on top of A's 100 under a 300 store cap")
	}
	waitFor(t, 10*time.Second, "B sees A and C alive", func() bool { return b.p.AlivePeers() == 2 })
	_, opB, err := b.redeem(t, card, 100, storeCap)
	if err != nil {
		t.Fatalf("B redeems 100 below the threshold with 100 used of 300: %v", err)
	}
	waitFor(t, 10*time.Second, "C records B's redeem", func() bool { return c.j.hasPeerOp(card, opB.ID) })
	if _, _, err := c.redeem(t, card, 101, storeCap); err == nil {
		t.Fatalf("C approved 101 with 200 of 300 used store-wide")
	}
	known, err := c.j.OfflineRedeemed(context.Background(), card)
	if err != nil {
		t.Fatal(err)
	}
	if known != 200 {
		t.Errorf("C counts %d points redeemed store-wide, want A's 100 + B's 100", known)
	}
	total := loyalty.Points(0)
	for _, tl := range tills {
		tl.mu.Lock()
		total += tl.spent[card]
		tl.mu.Unlock()
	}
	if total > storeCap {
		t.Errorf("card redeemed %d points offline store-wide, want at most the cap %d", total, storeCap)
	}
	for _, tl := range tills {
		if st := tl.p.Stats(); st.Rejected != 0 {
			t.Errorf("%s rejected %d events in a clean cluster, want 0", tl.id, st.Rejected)
		}
	}
}

// Invariant 4 under a partition: a till whose gossip is cut reaches neither
// the cloud nor any peer, so IsolatedRedeemCap applies; when the network
// heals it catches up with what the others did and they with what it did.
func TestInvariant4_PartitionedTillUsesIsolatedCapAndCatchesUp(t *testing.T) {
	tills := newCluster(t, clusterOpts{n: 3, isolatedCap: 50, threshold: 0, gated: true, seed: 1})
	a, b, c := tills[0], tills[1], tills[2]
	card := testCard(t, "2012345678910")
	const storeCap = 300

	c.gate.closed.Store(true)
	waitFor(t, 15*time.Second, "C sees no live peer", func() bool { return c.p.AlivePeers() == 0 })
	waitFor(t, 15*time.Second, "A and B see C failed", func() bool { return a.p.AlivePeers() == 1 && b.p.AlivePeers() == 1 })

	// 40 fits the isolated cap too: approved whether or not B answers A in time.
	_, opA, err := a.redeem(t, card, 40, storeCap)
	if err != nil {
		t.Fatalf("A (still with B) redeems 40: %v", err)
	}
	chk, _, err := c.redeem(t, card, 60, storeCap)
	var capErr *peers.IsolatedCapError
	if !errors.As(err, &capErr) {
		t.Fatalf("cut-off C redeems 60 over a 50 isolated cap: got %v (check %+v), want *IsolatedCapError", err, chk)
	}
	if !chk.Isolated || capErr.Cap != 50 || capErr.Requested != 60 {
		t.Errorf("isolated refusal: got isolated=%t cap=%d requested=%d, want true, 50, 60", chk.Isolated, capErr.Cap, capErr.Requested)
	}
	_, opC, err := c.redeem(t, card, 50, storeCap)
	if err != nil {
		t.Fatalf("cut-off C redeems 50 within the isolated cap: %v", err)
	}
	if _, _, err := c.redeem(t, card, 1, storeCap); !errors.Is(err, peers.ErrIsolatedCapReached) {
		t.Fatalf("cut-off C redeems 1 more past the isolated cap: got %v, want ErrIsolatedCapReached", err)
	}
	if c.j.hasPeerOp(card, opA.ID) {
		t.Fatalf("C recorded A's redeem while cut off: the partition leaks")
	}

	c.gate.closed.Store(false)
	waitFor(t, 20*time.Second, "C rejoins A and B", func() bool { return c.p.AlivePeers() == 2 })
	waitFor(t, 20*time.Second, "C catches up with A's redeem", func() bool { return c.j.hasPeerOp(card, opA.ID) })
	waitFor(t, 20*time.Second, "B has A's redeem", func() bool { return b.j.hasPeerOp(card, opA.ID) })
	for _, tl := range []*till{a, b} {
		waitFor(t, 20*time.Second, tl.id+" learns C's isolated redeem", func() bool { return tl.j.hasPeerOp(card, opC.ID) })
	}
	for _, tl := range tills {
		known, err := tl.j.OfflineRedeemed(context.Background(), card)
		if err != nil {
			t.Fatal(err)
		}
		if known != 90 {
			t.Errorf("%s counts %d points redeemed store-wide after the heal, want A's 40 + C's 50", tl.id, known)
		}
	}
	// 90 + 211 passes the store cap, and 211 the isolated cap: refused either way.
	if _, _, err := c.redeem(t, card, 211, storeCap); err == nil {
		t.Fatalf("healed C approved 211 with 90 of 300 used store-wide")
	}
}

// A till that was cut off catches up through the others' re-announcements,
// which serf delivers at best once and which a till still joining drops
// (Join ignores older events). So a re-announcement on a till's return is
// made twice: at once and a few periods later.
func TestReannouncementOnReturnIsRepeatedOnce(t *testing.T) {
	tills := newCluster(t, clusterOpts{n: 2, isolatedCap: 500, threshold: 0, gated: true, seed: 7})
	a, b := tills[0], tills[1]
	card := testCard(t, "2012345678927")
	_, op, err := a.redeem(t, card, 40, 300)
	if err != nil {
		t.Fatalf("A redeems 40: %v", err)
	}
	waitFor(t, 10*time.Second, "A's first announcement", func() bool { return a.p.Stats().Announced >= 1 })

	b.gate.closed.Store(true)
	waitFor(t, 15*time.Second, "A sees B failed", func() bool { return a.p.AlivePeers() == 0 })
	before := a.p.Stats().Announced
	b.gate.closed.Store(false)
	waitFor(t, 20*time.Second, "B back", func() bool { return a.p.AlivePeers() == 1 && b.p.AlivePeers() == 1 })
	waitFor(t, 10*time.Second, "A re-announces on B's return, then once more", func() bool {
		return a.p.Stats().Announced >= before+2
	})
	waitFor(t, 10*time.Second, "B records A's redeem", func() bool { return b.j.hasPeerOp(card, op.ID) })
}
