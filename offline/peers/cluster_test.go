package peers_test

import (
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
	tills := newCluster(t, clusterOpts{n: 3, isolatedCap: 100, threshold: 100})
	a, b, c := tills[0], tills[1], tills[2]
	card := testCard(t, "2012345678903")
	const storeCap = 300

	_, opA, err := a.redeem(t, card, 200, storeCap)
	if err != nil {
		t.Fatalf("A redeems 200 of a 300 cap: %v", err)
	}
	// At once, without waiting for gossip: B asks its peers before a
	// redeem at the threshold and must not approve 150 on top of A's 200.
	chk, _, err := b.redeem(t, card, 150, storeCap)
	if err == nil {
		t.Fatalf("B approved 150 after A's 200 under a 300 store cap (check %+v)", chk)
	}
	if !errors.Is(err, errStoreCap) && !errors.Is(err, peers.ErrIsolatedCapReached) {
		t.Fatalf("B's refusal: got %v, want the store cap or the isolated cap", err)
	}
	if chk.Asked && chk.Answered > 0 && chk.Redeemed < 200 {
		t.Errorf("B asked and %d peers answered: got %d points known, want at least A's 200", chk.Answered, chk.Redeemed)
	}
	for _, tl := range []*till{b, c} {
		waitFor(t, 10*time.Second, tl.id+" records A's redeem", func() bool { return tl.j.hasPeerOp(opA.ID) })
	}
	got := b.j.peerOps()[opA.ID]
	want := peers.PeerRedeem{Op: opA.ID, Card: card, Points: 200, Terminal: a.id, Epoch: 1, Seq: opA.Seq, At: opA.WallTime.Truncate(time.Millisecond)}
	if !got.At.Equal(want.At) || got.Op != want.Op || got.Card != want.Card || got.Points != want.Points || got.Terminal != want.Terminal || got.Seq != want.Seq || got.Epoch != want.Epoch {
		t.Errorf("B's peer op: got %+v, want %+v", got, want)
	}

	_, opB, err := b.redeem(t, card, 100, storeCap)
	if err != nil {
		t.Fatalf("B redeems the 100 left of the store cap: %v", err)
	}
	waitFor(t, 10*time.Second, "C records B's redeem", func() bool { return c.j.hasPeerOp(opB.ID) })
	if _, _, err := c.redeem(t, card, 1, storeCap); !errors.Is(err, errStoreCap) {
		t.Fatalf("C redeems 1 point after the store used its 300 cap: got %v, want the store cap refusal", err)
	}
	total := loyalty.Points(0)
	for _, tl := range tills {
		tl.j.mu.Lock()
		total += tl.j.own[card]
		tl.j.mu.Unlock()
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

	_, opA, err := a.redeem(t, card, 100, storeCap)
	if err != nil {
		t.Fatalf("A (still with B) redeems 100: %v", err)
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
	if c.j.hasPeerOp(opA.ID) {
		t.Fatalf("C recorded A's redeem while cut off: the partition leaks")
	}

	c.gate.closed.Store(false)
	waitFor(t, 20*time.Second, "C rejoins A and B", func() bool { return c.p.AlivePeers() == 2 })
	waitFor(t, 20*time.Second, "C catches up with A's redeem", func() bool { return c.j.hasPeerOp(opA.ID) })
	for _, tl := range []*till{a, b} {
		waitFor(t, 20*time.Second, tl.id+" learns C's isolated redeem", func() bool { return tl.j.hasPeerOp(opC.ID) })
	}
	chk, _, err = c.redeem(t, card, 151, storeCap)
	if !errors.Is(err, errStoreCap) {
		t.Fatalf("healed C redeems 151 with 150 used of 300: got %v (check %+v), want the store cap refusal", err, chk)
	}
	if chk.Isolated {
		t.Errorf("healed C still isolated: %+v", chk)
	}
	if _, _, err := c.redeem(t, card, 150, storeCap); err != nil {
		t.Fatalf("healed C redeems the 150 left: %v", err)
	}
}
