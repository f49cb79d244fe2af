package peers_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/offline/peers"
)

// A rotation the cloud hands out reaches the store without a restart: the
// first till to learn the new keyring installs it everywhere, switches once
// every till holds it, and removes the old key when the cloud drops it;
// offline redeems keep reaching every till across each step (invariant 4).
func TestSetKeyringRotatesTheStoreWhileGossipFlows(t *testing.T) {
	oldKey, newKey := randomKey(t, 32), randomKey(t, 32)
	tills := newCluster(t, clusterOpts{n: 3, isolatedCap: 1000, threshold: 1000, gossipKey: oldKey, keyringDir: t.TempDir()})
	a, b, c := tills[0], tills[1], tills[2]
	ctx := context.Background()
	card := testCard(t, "2012345678958")
	flows := func(from *till, step string) {
		t.Helper()
		_, op, err := from.redeem(t, card, 10, 1000)
		if err != nil {
			t.Fatalf("%s: %s redeems: %v", step, from.id, err)
		}
		for _, tl := range tills {
			if tl != from {
				waitFor(t, 15*time.Second, step+": "+tl.id+" records "+from.id+"'s redeem", func() bool { return tl.j.hasPeerOp(card, op.ID) })
			}
		}
	}
	flows(a, "before the rotation")

	ch, err := a.p.SetKeyring(ctx, [][]byte{newKey, oldKey})
	if err != nil {
		t.Fatalf("SetKeyring(new, old): %v", err)
	}
	if ch.Installed != 1 || ch.Removed != 0 || ch.Switched == ch.Pending {
		t.Errorf("SetKeyring(new, old) = %+v; want 1 installed, none removed, switched or pending", ch)
	}
	// Pending only when a till's answer missed serf's query timeout (a
	// loaded machine): the next call, as the next roster refresh, switches.
	for i := 0; ch.Pending && i < 20; i++ {
		if ch, err = a.p.SetKeyring(ctx, [][]byte{newKey, oldKey}); err != nil {
			t.Fatalf("SetKeyring(new, old) again: %v", err)
		}
	}
	if ch.Pending {
		t.Fatalf("the switch to the new key stayed pending over 20 calls in a healthy store")
	}
	for _, tl := range tills {
		keys := tl.p.Keys()
		if len(keys) != 2 || !bytes.Equal(keys[0], newKey) {
			t.Errorf("%s after the switch: %d keys, primary new %t; want both keys, the new one primary", tl.id, len(keys), len(keys) > 0 && bytes.Equal(keys[0], newKey))
		}
	}
	flows(b, "after the switch")

	// B learns the same keyring from the cloud later: nothing left to do.
	if ch, err := b.p.SetKeyring(ctx, [][]byte{newKey, oldKey}); err != nil || ch != (peers.KeyringChange{}) {
		t.Errorf("SetKeyring again on B: %+v, %v; want no change", ch, err)
	}
	if ch, err := c.p.SetKeyring(ctx, [][]byte{newKey}); err != nil || ch.Removed != 1 || ch.Installed != 0 {
		t.Fatalf("SetKeyring(new) once the rotation finished: %+v, %v; want the old key removed", ch, err)
	}
	for _, tl := range tills {
		if keys := tl.p.Keys(); len(keys) != 1 || !bytes.Equal(keys[0], newKey) {
			t.Errorf("%s after the rotation finished: %d keys; want only the new one", tl.id, len(keys))
		}
	}
	flows(c, "after the old key is gone")
	if _, err := a.p.SetKeyring(ctx, nil); !errors.Is(err, peers.ErrConfig) {
		t.Errorf("SetKeyring(nil): %v, want ErrConfig", err)
	}
}

// A roster the cloud hands out later takes effect at once: a terminal it
// adds is trusted, one it drops (revoked) is not, and a roster without
// this terminal is refused.
func TestSetRosterTrustsNewTerminalsAndDropsRevokedOnes(t *testing.T) {
	tills := newCluster(t, clusterOpts{n: 2, isolatedCap: 1000, memJournal: true})
	a, b := tills[0], tills[1]
	card := testCard(t, "2012345678965")
	newPub, newKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(seq uint64) []byte {
		r := peers.PeerRedeem{Card: card, Points: 5, Terminal: "till-new", Epoch: 1, Seq: seq, At: time.Now().Truncate(time.Millisecond).UTC()}
		r.Op[0], r.Op[15] = 0x42, byte(seq)
		e, err := peers.SignEvent(testStore, r, newKey)
		if err != nil {
			t.Fatal(err)
		}
		return e.Raw
	}
	if _, err := peers.VerifyEvent(testStore, mustRoster(t, []*till{a, b}), ev(1)); !errors.Is(err, peers.ErrUnknownTerminal) {
		t.Fatalf("an event of a terminal the roster lacks: %v, want ErrUnknownTerminal", err)
	}
	grown := mustRoster(t, []*till{a, b}, peers.Terminal{ID: "till-new", PublicKey: newPub})
	if err := a.p.SetRoster(grown); err != nil {
		t.Fatalf("SetRoster with a new terminal: %v", err)
	}
	if got := a.p.Roster().Len(); got != 3 {
		t.Errorf("roster after SetRoster: %d terminals, want 3", got)
	}
	if _, err := peers.VerifyEvent(testStore, a.p.Roster(), ev(2)); err != nil {
		t.Errorf("an event of the new terminal after SetRoster: %v, want it verified", err)
	}
	if err := a.p.SetRoster(mustRoster(t, []*till{a, b})); err != nil {
		t.Fatal(err)
	}
	if _, err := peers.VerifyEvent(testStore, a.p.Roster(), ev(3)); !errors.Is(err, peers.ErrUnknownTerminal) {
		t.Errorf("an event of a revoked terminal: %v, want ErrUnknownTerminal", err)
	}
	if err := a.p.SetRoster(mustRoster(t, []*till{b})); !errors.Is(err, peers.ErrConfig) {
		t.Errorf("SetRoster without this terminal: %v, want ErrConfig", err)
	}
}

func mustRoster(t *testing.T, tills []*till, extra ...peers.Terminal) *peers.Roster {
	t.Helper()
	var ts []peers.Terminal
	for _, tl := range tills {
		ts = append(ts, peers.Terminal{ID: tl.id, PublicKey: tl.key.Public().(ed25519.PublicKey)})
	}
	r, err := peers.NewRoster(append(ts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The store does not switch to a key while a live till may lack it: with
// C cut off (but not yet declared failed), A installs the new key where it
// can and waits; once C is back, the next call switches every till.
func TestSetKeyringWaitsForEveryLiveTillBeforeSwitching(t *testing.T) {
	slow := fastTiming()
	slow.ProbeInterval, slow.ProbeTimeout, slow.SuspicionMult = 5*time.Second, 2*time.Second, 6
	oldKey, newKey := randomKey(t, 32), randomKey(t, 32)
	tills := newCluster(t, clusterOpts{n: 3, isolatedCap: 1000, gossipKey: oldKey, gated: true, seed: 11, timing: &slow})
	a, c := tills[0], tills[2]
	ctx := context.Background()

	c.gate.closed.Store(true)
	ch, err := a.p.SetKeyring(ctx, [][]byte{newKey, oldKey})
	if err != nil {
		t.Fatalf("SetKeyring with C cut off: %v", err)
	}
	if !ch.Pending || ch.Switched || !bytes.Equal(a.p.Keys()[0], oldKey) {
		t.Fatalf("SetKeyring with C cut off = %+v, primary still old %t; want pending, not switched", ch, bytes.Equal(a.p.Keys()[0], oldKey))
	}
	c.gate.closed.Store(false)
	waitFor(t, 30*time.Second, "A switches once C holds the new key", func() bool {
		ch, err := a.p.SetKeyring(ctx, [][]byte{newKey, oldKey})
		return err == nil && !ch.Pending && bytes.Equal(a.p.Keys()[0], newKey)
	})
	for _, tl := range tills {
		if keys := tl.p.Keys(); !bytes.Equal(keys[0], newKey) {
			t.Errorf("%s still encrypts with the old key", tl.id)
		}
	}
}
