package storetest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
)

func enrollAt(t *testing.T, l cloud.Ledger, store, terminal, addr string, seed byte, at time.Time) cloud.Terminal {
	t.Helper()
	code := "CODE-" + store + "-" + terminal
	if err := l.CreateEnrollCode(ctx, cloud.EnrollCode{Code: code, Store: store, Terminal: terminal, Expires: at.Add(time.Hour), Created: at}); err != nil {
		t.Fatalf("create code: %v", err)
	}
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)).Public().(ed25519.PublicKey)
	term, err := l.Enroll(ctx, code, cloud.TerminalKey{PublicKey: pub, KeyID: terminal + "-key", Addr: addr}, at)
	if err != nil {
		t.Fatalf("enroll %s: %v", terminal, err)
	}
	return term
}

func roster(t *testing.T, l cloud.Ledger, store string) cloud.StoreRoster {
	t.Helper()
	r, err := l.StoreRoster(ctx, store)
	if err != nil {
		t.Fatalf("roster of %s: %v", store, err)
	}
	return r
}

// Invariant 4 needs every till of a store to know the others' keys and the
// store's gossip key: the roster lists a store's terminals only, the first
// enrollment makes the keyring, and every change moves the version on.
func testStoreRoster(t *testing.T, l cloud.Ledger) {
	if _, err := l.StoreRoster(ctx, "s1"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("roster of a store without terminals: %v, want ErrNotFound", err)
	}
	enrollAt(t, l, "s1", "t1", "10.0.0.1:7946", 1, Start())
	r1 := roster(t, l, "s1")
	if len(r1.Terminals) != 1 || r1.Terminals[0].Addr != "10.0.0.1:7946" || len(r1.GossipKeys) != 1 || len(r1.GossipKeys[0].Key) != cloud.GossipKeySize {
		t.Fatalf("roster after the first enrollment: %+v, want t1 with its address and one 32-byte key", r1)
	}
	enrollAt(t, l, "s1", "t2", "", 2, Start())
	enrollAt(t, l, "s2", "t3", "10.0.1.1:7946", 3, Start())
	r2 := roster(t, l, "s1")
	if len(r2.Terminals) != 2 || r2.Terminals[1].ID != "t2" || r2.Version <= r1.Version {
		t.Errorf("roster after the second enrollment: %d terminals, version %d (was %d); want t1 and t2 and a newer version", len(r2.Terminals), r2.Version, r1.Version)
	}
	if len(r2.GossipKeys) != 1 || !bytes.Equal(r2.GossipKeys[0].Key, r1.GossipKeys[0].Key) {
		t.Errorf("the second enrollment changed the store's gossip key")
	}
	if other := roster(t, l, "s2"); bytes.Equal(other.GossipKeys[0].Key, r1.GossipKeys[0].Key) || len(other.Terminals) != 1 {
		t.Errorf("store s2 shares s1's gossip key or terminals")
	}
	if err := l.RevokeTerminal(ctx, "t2", Start()); err != nil {
		t.Fatal(err)
	}
	r3 := roster(t, l, "s1")
	if r3.Version <= r2.Version || r3.Terminals[1].Status != cloud.TerminalRevoked {
		t.Errorf("after revoking t2: version %d (was %d), t2 %s; want a newer version and t2 revoked", r3.Version, r2.Version, r3.Terminals[1].Status)
	}
}

// A rotation adds a new primary and keeps the old key until it is removed,
// so the store's tills switch without losing each other.
func testGossipKeyRotation(t *testing.T, l cloud.Ledger) {
	enrollAt(t, l, "s1", "t1", "", 1, Start())
	old := roster(t, l, "s1")
	next := bytes.Repeat([]byte{0x5a}, cloud.GossipKeySize)
	if err := l.RotateGossipKey(ctx, "s9", next, Start()); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("rotate the key of an unknown store: %v, want ErrNotFound", err)
	}
	if err := l.RotateGossipKey(ctx, "s1", next[:16], Start()); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("rotate to a 16-byte key: %v, want ErrInvalidInput", err)
	}
	at := Start().Add(time.Hour)
	if err := l.RotateGossipKey(ctx, "s1", next, at); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if err := l.RotateGossipKey(ctx, "s1", old.GossipKeys[0].Key, at); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("rotate back to a key the store had: %v, want ErrInvalidInput", err)
	}
	r := roster(t, l, "s1")
	if len(r.GossipKeys) != 2 || !bytes.Equal(r.GossipKeys[0].Key, next) || !r.GossipKeys[0].RetiredAt.IsZero() ||
		!bytes.Equal(r.GossipKeys[1].Key, old.GossipKeys[0].Key) || !r.GossipKeys[1].RetiredAt.Equal(at) || r.Version <= old.Version {
		t.Fatalf("after the rotation: %d keys, version %d; want the new primary first, the old one retired at %s, a newer version", len(r.GossipKeys), r.Version, at)
	}
	if n, err := l.RemoveRetiredGossipKeys(ctx, "s1", at.Add(-time.Second)); err != nil || n != 0 {
		t.Errorf("remove keys retired before the rotation: %d, %v; want 0", n, err)
	}
	if n, err := l.RemoveRetiredGossipKeys(ctx, "s1", at); err != nil || n != 1 {
		t.Errorf("finish the rotation: removed %d, %v; want 1", n, err)
	}
	done := roster(t, l, "s1")
	if len(done.GossipKeys) != 1 || !bytes.Equal(done.GossipKeys[0].Key, next) || done.Version <= r.Version {
		t.Errorf("after finishing: %d keys, version %d; want only the new key and a newer version", len(done.GossipKeys), done.Version)
	}
}

// Tills of a new store enrolling at the same moment get one keyring: a
// second key made by a race would split the store's gossip in two.
func testConcurrentFirstEnrollments(t *testing.T, l cloud.Ledger) {
	const n = 4
	for i := range n {
		code := "RACE-" + string(rune('a'+i))
		if err := l.CreateEnrollCode(ctx, cloud.EnrollCode{Code: code, Store: "s7", Terminal: "r" + string(rune('a'+i)), Expires: Start().Add(time.Hour), Created: Start()}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(40 + i)}, 32)).Public().(ed25519.PublicKey)
			_, err := l.Enroll(ctx, "RACE-"+string(rune('a'+i)), cloud.TerminalKey{PublicKey: pub, KeyID: "race"}, Start())
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent enrollment: %v", err)
		}
	}
	r := roster(t, l, "s7")
	if len(r.Terminals) != n || len(r.GossipKeys) != 1 || r.Version != n {
		t.Errorf("store after %d concurrent first enrollments: %d terminals, %d gossip keys, version %d; want %d, 1, %d", n, len(r.Terminals), len(r.GossipKeys), r.Version, n, n)
	}
}
