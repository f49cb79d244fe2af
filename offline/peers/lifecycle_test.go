package peers_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/peers"
)

func soloConfig(t *testing.T) peers.Config {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	roster, err := peers.NewRoster(peers.Terminal{ID: "till-a", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	cfg := peers.DefaultConfig()
	cfg.Store, cfg.Terminal, cfg.SigningKey, cfg.Roster = testStore, "till-a", priv, roster
	cfg.BindAddr, cfg.BindPort = "127.0.0.40", 0
	cfg.Keys = [][]byte{randomKey(t, 32)}
	cfg.Timing = fastTiming()
	cfg.LeaveTimeout = 300 * time.Millisecond
	cfg.Logger = testLogger()
	return cfg
}

func TestConfigValidateSaysWhatToFix(t *testing.T) {
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		mod  func(c *peers.Config)
	}{
		{"no store", func(c *peers.Config) { c.Store = "" }},
		{"no terminal", func(c *peers.Config) { c.Terminal = "" }},
		{"terminal not in roster", func(c *peers.Config) { c.Terminal = "till-z" }},
		{"key not the roster's", func(c *peers.Config) { c.SigningKey = otherPriv }},
		{"no signing key", func(c *peers.Config) { c.SigningKey = nil }},
		{"no roster", func(c *peers.Config) { c.Roster = nil }},
		{"query timeout that would stall a checkout", func(c *peers.Config) { c.QueryTimeout = 600 * time.Millisecond }},
		{"negative isolated cap", func(c *peers.Config) { c.IsolatedRedeemCap = -1 }},
		{"gossip key of 20 bytes", func(c *peers.Config) { c.Keys = [][]byte{make([]byte, 20)} }},
		{"bind address not an IP", func(c *peers.Config) { c.BindAddr = "till-a.local" }},
		{"port out of range", func(c *peers.Config) { c.BindPort = 70000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := soloConfig(t)
			tc.mod(&cfg)
			if _, err := peers.New(cfg, newMemJournal()); !errors.Is(err, peers.ErrConfig) {
				t.Errorf("got %v, want ErrConfig", err)
			}
		})
	}
	if _, err := peers.New(soloConfig(t), nil); !errors.Is(err, peers.ErrConfig) {
		t.Errorf("no journal: got %v, want ErrConfig", err)
	}
}

func TestCreateStartShutdownLifecycle(t *testing.T) {
	ctx := context.Background()
	p, err := peers.New(soloConfig(t), newMemJournal())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Members(); !errors.Is(err, peers.ErrNotStarted) {
		t.Errorf("Members before Start: got %v, want ErrNotStarted", err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err == nil {
		t.Errorf("second Start: got nil, want an error")
	}
	ms, err := p.Members()
	if err != nil || len(ms) != 1 || !ms[0].Self || ms[0].Status != "alive" || !ms[0].InRoster {
		t.Errorf("Members of a lone till: got %+v, %v; want itself, alive, in the roster", ms, err)
	}
	for i := range 2 {
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown #%d: %v", i+1, err)
		}
	}
	if _, err := p.Members(); !errors.Is(err, peers.ErrShutdown) {
		t.Errorf("Members after Shutdown: got %v, want ErrShutdown", err)
	}
	if err := p.Start(ctx); !errors.Is(err, peers.ErrShutdown) {
		t.Errorf("Start after Shutdown: got %v, want ErrShutdown", err)
	}

	q, err := peers.New(soloConfig(t), newMemJournal())
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown before Start: %v", err)
	}
	if err := q.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown before Start: %v", err)
	}
}

// A lone till with the cloud down is isolated and applies the isolated cap
// without waiting on a query; with the cloud up it asks nobody.
func TestLoneTillIsIsolated(t *testing.T) {
	cfg := soloConfig(t)
	cfg.IsolatedRedeemCap, cfg.QueryThreshold = 30, 0
	p, err := peers.New(cfg, newMemJournal())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	card := testCard(t, "2012345678934")
	chk, err := p.CheckRedeem(context.Background(), card, 31)
	if !errors.Is(err, peers.ErrIsolatedCapReached) || !chk.Isolated || chk.Asked {
		t.Errorf("lone till, 31 over a 30 cap: got %+v, %v; want isolated, not asked, ErrIsolatedCapReached", chk, err)
	}
	if _, err := p.CheckRedeem(context.Background(), card, 30); err != nil {
		t.Errorf("lone till, 30 within a 30 cap: %v", err)
	}
	if _, err := p.CheckRedeem(context.Background(), card, 0); !errors.Is(err, peers.ErrNotOfflineRedeem) {
		t.Errorf("redeem of 0 points: got %v, want ErrNotOfflineRedeem", err)
	}
	p.SetState(peers.State{Online: true})
	chk, err = p.CheckRedeem(context.Background(), card, 1000)
	if err != nil || !chk.Online || chk.Isolated {
		t.Errorf("online till: got %+v, %v; want online, no refusal", chk, err)
	}
}

// The memberlist label is the store ID, and gossip is encrypted with the
// store key: a device of another store, or one without the key, cannot join.
func TestLabelAndKeyKeepStoresApart(t *testing.T) {
	key := randomKey(t, 32)
	cfg := soloConfig(t)
	cfg.Keys = [][]byte{key}
	p, err := peers.New(cfg, newMemJournal())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	addr, err := p.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		label string
		key   []byte
		join  bool
	}{
		{"another store's label", "store-043", key, false},
		{"no gossip key", testStore, nil, false},
		{"a wrong gossip key", testStore, randomKey(t, 32), false},
		{"this store's label and key", testStore, key, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rawSerf(t, "probe", tc.label, tc.key)
			n, err := s.Join([]string{addr}, true)
			if joined := n > 0 && err == nil; joined != tc.join {
				t.Errorf("join: got %d nodes, %v; want joined=%t", n, err, tc.join)
			}
		})
	}
}

// rawSerf is a bare serf member on 127.0.0.41, for probing a till from outside.
func rawSerf(t *testing.T, name, label string, key []byte) *serf.Serf {
	t.Helper()
	ml := memberlist.DefaultLANConfig()
	ml.Name, ml.Label = name, label
	ml.BindAddr, ml.BindPort = "127.0.0.41", 0
	ml.TCPTimeout = time.Second
	ml.Logger = serfTestLogger()
	if key != nil {
		kr, err := memberlist.NewKeyring(nil, key)
		if err != nil {
			t.Fatal(err)
		}
		ml.Keyring = kr
	}
	sc := serf.DefaultConfig()
	sc.NodeName, sc.MemberlistConfig, sc.Logger = name, ml, serfTestLogger()
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	return s
}

// Tags carry terminal ID, version, online state, backlog and the cloud
// watermark; Members shows them on the other tills, and a till that shuts
// down leaves.
func TestMembersShowPeersState(t *testing.T) {
	tills := newCluster(t, clusterOpts{n: 2, isolatedCap: 100})
	a, b := tills[0], tills[1]
	a.p.SetState(peers.State{Online: true, Backlog: 7, Acked: peers.Watermark{Epoch: 1, Seq: 42}})
	var seen peers.Member
	waitFor(t, 10*time.Second, "B sees A's new state", func() bool {
		ms, err := b.p.Members()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Name == a.id {
				seen = m
			}
		}
		return seen.Online && seen.Backlog == 7
	})
	want := peers.Member{Name: a.id, Terminal: a.id, Addr: seen.Addr, Status: "alive", Version: "test", Online: true, Backlog: 7, Acked: "1.42", InRoster: true}
	if seen != want {
		t.Errorf("A as B sees it: got %+v, want %+v", seen, want)
	}
	if err := a.p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "B sees A leave", func() bool {
		ms, _ := b.p.Members()
		for _, m := range ms {
			if m.Name == a.id {
				return m.Status == "left" || m.Status == "failed"
			}
		}
		return false
	})
}

// Gossip key rotation: InstallKey, UseKey, RemoveKey on every till; the
// keyring file follows, and a device with only the old key is shut out.
func TestGossipKeyRotation(t *testing.T) {
	oldKey, newKey := randomKey(t, 32), randomKey(t, 32)
	tills := newCluster(t, clusterOpts{n: 2, isolatedCap: 100, gossipKey: oldKey, keyringDir: t.TempDir()})
	ctx := context.Background()
	a := tills[0]
	if _, err := a.p.InstallKey(ctx, newKey); err != nil {
		t.Fatalf("install the new key: %v", err)
	}
	if _, err := a.p.UseKey(ctx, newKey); err != nil {
		t.Fatalf("use the new key: %v", err)
	}
	if _, err := a.p.RemoveKey(ctx, oldKey); err != nil {
		t.Fatalf("remove the old key: %v", err)
	}
	st, err := a.p.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString(newKey)
	if len(st.Keys) != 1 || st.Keys[enc] != 2 || st.Primary[enc] != 2 {
		t.Errorf("keys after rotation: got keys %v primary %v, want only the new key on both tills", st.Keys, st.Primary)
	}
	for _, tl := range tills {
		b, err := os.ReadFile(tl.keyring)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		if err := json.Unmarshal(b, &keys); err != nil {
			t.Fatalf("%s keyring file: %v", tl.id, err)
		}
		if len(keys) != 1 || keys[0] != enc {
			t.Errorf("%s keyring file: got %d keys, want only the new one", tl.id, len(keys))
		}
	}
	addr, err := a.p.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rawSerf(t, "old-key", testStore, oldKey).Join([]string{addr}, true); n != 0 || err == nil {
		t.Errorf("device with the removed key joins: got %d nodes, %v; want refused", n, err)
	}
	if _, err := a.p.InstallKey(ctx, []byte("short")); !errors.Is(err, peers.ErrConfig) {
		t.Errorf("install a 5-byte key: got %v, want ErrConfig", err)
	}
}

// An event the journal failed to record (a full disk) is not lost: once
// the journal works again it is recorded, once (retried, or taught again by
// a query answer).
func TestEventTheJournalFailedToRecordIsRecordedOnce(t *testing.T) {
	tills := newCluster(t, clusterOpts{n: 2, isolatedCap: 1000, threshold: 0, memJournal: true})
	a, b := tills[0], tills[1]
	card := testCard(t, "2012345678941")
	b.mem.failing.Store(true)
	_, opA, err := a.redeem(t, card, 100, 1000)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "B fails to record A's event", func() bool { return b.p.Stats().Failed > 0 })
	b.mem.failing.Store(false)
	waitFor(t, 15*time.Second, "B records A's redeem", func() bool {
		chk, err := b.p.CheckRedeem(context.Background(), card, 1)
		if err != nil {
			t.Fatal(err)
		}
		return chk.Redeemed == 100
	})
	if !b.j.hasPeerOp(card, opA.ID) {
		t.Errorf("B's journal lacks A's op after learning it")
	}
}

// Peer ops a cloud snapshot covers are dropped, and a replay of their
// events afterwards is ignored rather than counted again.
func TestCoveredPeerOpsDroppedAndReplaysIgnored(t *testing.T) {
	key := randomKey(t, 32)
	tills := newCluster(t, clusterOpts{n: 2, isolatedCap: 1000, gossipKey: key})
	a, b := tills[0], tills[1]
	addr, err := a.p.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	rg := newRogue(t, key, addr)
	card := testCard(t, "2012345678958")
	_, opA, err := a.redeem(t, card, 100, 1000)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "B records A's redeem and the rogue hears it", func() bool {
		return b.j.hasPeerOp(card, opA.ID) && len(rg.captured()) > 0
	})
	// Not covered while A has not published a watermark past it.
	if ids, err := b.p.Covered(context.Background(), card, time.Now()); err != nil || len(ids) != 0 {
		t.Fatalf("covered before A's ack: got %v, %v; want nothing dropped", ids, err)
	}
	a.p.SetState(peers.State{Acked: peers.Watermark{Epoch: 1, Seq: opA.Seq}})
	var dropped []loyalty.OpID
	waitFor(t, 10*time.Second, "a snapshot fetched after A's ack covers A's redeem", func() bool {
		ids, err := b.p.Covered(context.Background(), card, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dropped = append(dropped, ids...)
		return len(dropped) > 0
	})
	if len(dropped) != 1 || dropped[0] != opA.ID || b.j.hasPeerOp(card, opA.ID) {
		t.Fatalf("dropped %v, journal still has it: %t; want exactly A's op dropped", dropped, b.j.hasPeerOp(card, opA.ID))
	}
	before := b.p.Stats().Duplicates
	for _, raw := range rg.captured() {
		rg.send(t, raw)
	}
	waitFor(t, 10*time.Second, "B ignores the replay", func() bool { return b.p.Stats().Duplicates > before })
	if b.j.hasPeerOp(card, opA.ID) {
		t.Errorf("a replayed event brought a covered op back into the journal")
	}
}
