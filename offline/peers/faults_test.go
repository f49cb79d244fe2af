package peers_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/peers"
)

// rogue is a real serf member holding the store's gossip key and label but
// no roster entry: a compromised device on the store LAN. It records every
// redeem event it hears and can replay them or send forgeries.
type rogue struct {
	s      *serf.Serf
	events chan serf.Event
	mu     sync.Mutex
	heard  [][]byte
	sent   map[string]bool // what the rogue itself sent: serf hands it back
	stop   chan struct{}
	wg     sync.WaitGroup
}

func newRogue(t *testing.T, gossipKey []byte, join string) *rogue {
	t.Helper()
	kr, err := memberlist.NewKeyring(nil, gossipKey)
	if err != nil {
		t.Fatal(err)
	}
	ml := memberlist.DefaultLANConfig()
	ml.Name, ml.Label, ml.Keyring = "rogue", testStore, kr
	ml.BindAddr, ml.BindPort = "127.0.0.30", 0
	ml.GossipInterval, ml.ProbeInterval, ml.ProbeTimeout = 50*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	ml.Logger = serfTestLogger()
	sc := serf.DefaultConfig()
	sc.NodeName, sc.MemberlistConfig, sc.Logger = "rogue", ml, serfTestLogger()
	r := &rogue{events: make(chan serf.Event, 1024), stop: make(chan struct{}), sent: make(map[string]bool)}
	sc.EventCh = r.events
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatalf("create rogue member: %v", err)
	}
	r.s = s
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.stop:
				return
			case e := <-r.events:
				if ue, ok := e.(serf.UserEvent); ok && ue.Name == peers.EventName {
					r.mu.Lock()
					if !r.sent[string(ue.Payload)] {
						r.sent[string(ue.Payload)] = true // heard once is enough
						r.heard = append(r.heard, bytes.Clone(ue.Payload))
					}
					r.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() {
		s.Shutdown()
		close(r.stop)
		r.wg.Wait()
	})
	if _, err := s.Join([]string{join}, true); err != nil {
		t.Fatalf("rogue joins the store: %v", err)
	}
	return r
}

func (r *rogue) send(t *testing.T, raw []byte) {
	t.Helper()
	r.mu.Lock()
	r.sent[string(raw)] = true
	r.mu.Unlock()
	if err := r.s.UserEvent(peers.EventName, raw, false); err != nil {
		t.Fatalf("rogue sends: %v", err)
	}
}

func (r *rogue) captured() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.heard...)
}

// forgeries returns events no till may record: signed by a key not in the
// roster, naming a terminal not in it, or altered after signing.
func forgeries(t *testing.T, card loyalty.CardHash, victim string, real []byte) (raws [][]byte, ids []loyalty.OpID) {
	t.Helper()
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, terminal := range []string{victim, "till-x"} {
		id, _ := loyalty.NewOpID(time.Now(), rand.Reader)
		ev, err := peers.SignEvent(testStore, peers.PeerRedeem{Op: id, Card: card, Points: 999, Terminal: terminal, Epoch: 1, Seq: 1, At: time.Now()}, stranger)
		if err != nil {
			t.Fatal(err)
		}
		raws, ids = append(raws, ev.Raw), append(ids, id)
	}
	if real != nil {
		tampered := bytes.Clone(real)
		tampered[1+32+15] ^= 0xff // another op ID, same signature
		if r, err := peers.DecodeEvent(tampered); err == nil {
			ids = append(ids, r.Op)
		}
		raws = append(raws, tampered, real[:40])
	}
	return raws, ids
}

// Invariant 4, counted: with gossip packets lost at random, every event
// duplicated and replayed by a rogue member, and forged events mixed in,
// the points a card redeems offline store-wide never exceed the sum of the
// caps the policy let each till apply (the store cap while it reaches a
// peer, the isolated cap while it does not), forgeries are never recorded,
// and once the loss stops every till knows every redeem exactly once.
func TestInvariant4_OverspendBoundedUnderLostDuplicatedReplayedForgedEvents(t *testing.T) {
	const (
		storeCap    = 300
		isolatedCap = 60
		attempts    = 12
		seed        = 4
	)
	key := randomKey(t, 32)
	tills := newCluster(t, clusterOpts{n: 3, isolatedCap: isolatedCap, threshold: 40, gated: true, seed: seed, gossipKey: key})
	addr, err := tills[0].p.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	rg := newRogue(t, key, addr)
	card := testCard(t, "2012345678927")
	for _, tl := range tills {
		tl.gate.lossPPM.Store(100_000) // 10% of gossip packets lost, both ways
	}

	rnd := mrand.New(mrand.NewPCG(seed, 99))
	capApplied := make(map[string]loyalty.Points)
	approved := make(map[loyalty.OpID]*loyalty.Op)
	var forgedIDs []loyalty.OpID
	var total loyalty.Points
	for i := range attempts {
		tl := tills[rnd.IntN(len(tills))]
		pts := loyalty.Points(10 + rnd.IntN(111))
		chk, op, err := tl.redeem(t, card, pts, storeCap)
		t.Logf("attempt %d: %s redeems %d: %+v, %v", i, tl.id, pts, chk, err)
		switch {
		case err == nil:
			cp := loyalty.Points(storeCap)
			if chk.Isolated {
				cp = isolatedCap
			}
			capApplied[tl.id] = max(capApplied[tl.id], cp)
			approved[op.ID] = op
			total += pts
		case errors.Is(err, errStoreCap), errors.Is(err, peers.ErrIsolatedCapReached):
		default:
			t.Fatalf("attempt %d at %s: %v", i, tl.id, err)
		}
		// The rogue replays everything it heard so far, and forges.
		heard := rg.captured()
		for _, raw := range heard {
			rg.send(t, raw)
		}
		var real []byte
		if len(heard) > 0 {
			real = heard[rnd.IntN(len(heard))]
		}
		raws, ids := forgeries(t, card, "till-b", real)
		forgedIDs = append(forgedIDs, ids...)
		for _, raw := range raws {
			rg.send(t, raw)
		}
	}

	var bound loyalty.Points
	for _, cp := range capApplied {
		bound += cp
	}
	t.Logf("card redeemed %d points offline in %d redeems; store cap %d, overspend %d, bound %d",
		total, len(approved), storeCap, max(0, total-storeCap), bound)
	if total > bound {
		t.Fatalf("invariant 4: card redeemed %d points offline store-wide, want at most %d (sum of the caps applied %v)", total, bound, capApplied)
	}

	// The network heals: every till learns every other till's redeems once.
	for _, tl := range tills {
		tl.gate.lossPPM.Store(0)
	}
	for _, tl := range tills {
		waitFor(t, 20*time.Second, tl.id+" knows every other till's redeem", func() bool {
			for id, op := range approved {
				if op.Terminal != tl.id && !tl.j.hasPeerOp(card, id) {
					return false
				}
			}
			return true
		})
	}
	var rejected, duplicates int
	for _, tl := range tills {
		ops := tl.j.peerOps(card)
		for id, r := range ops {
			op, ok := approved[id]
			if !ok {
				t.Errorf("%s recorded op %s (%+v) that no till approved", tl.id, id, r)
				continue
			}
			if r.Terminal != op.Terminal || r.Points != -op.Points || r.Card != op.Card {
				t.Errorf("%s recorded %+v for op %s, want terminal %s, %d points", tl.id, r, id, op.Terminal, -op.Points)
			}
		}
		for _, id := range forgedIDs {
			if _, ok := ops[id]; ok {
				t.Errorf("%s recorded forged op %s", tl.id, id)
			}
		}
		got, err := tl.j.OfflineRedeemed(context.Background(), card)
		if err != nil {
			t.Fatal(err)
		}
		if got != total {
			t.Errorf("%s counts %d points redeemed store-wide, want %d (each redeem once)", tl.id, got, total)
		}
		st := tl.p.Stats()
		rejected += st.Rejected
		duplicates += st.Duplicates
	}
	if rejected == 0 || duplicates == 0 {
		t.Errorf("tills rejected %d forged events and ignored %d duplicates; want both above zero (did the rogue reach them?)", rejected, duplicates)
	}
	// With everything known, any till refuses what would pass the store cap.
	for _, tl := range tills {
		if total+1 > storeCap {
			if _, _, err := tl.redeem(t, card, storeCap-total+1, storeCap); err == nil {
				t.Errorf("%s approved %d points with %d of %d used store-wide", tl.id, storeCap-total+1, total, storeCap)
			}
		}
	}
}
