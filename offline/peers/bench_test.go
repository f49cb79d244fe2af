package peers_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/peers"
)

// interleaved runs op and its baseline alternately in one b.Loop, so a
// shared machine's load drifts the same way for both, and reports each
// one's time per op and their ratio (x_bare). ns/op is the two together.
func interleaved(b *testing.B, op, bare func()) {
	b.Helper()
	var opD, bareD time.Duration
	for b.Loop() {
		t0 := time.Now()
		op()
		t1 := time.Now()
		bare()
		bareD += time.Since(t1)
		opD += t1.Sub(t0)
	}
	n := float64(b.N)
	b.ReportMetric(float64(opD.Nanoseconds())/n, "op-ns/op")
	b.ReportMetric(float64(bareD.Nanoseconds())/n, "bare-ns/op")
	b.ReportMetric(float64(opD)/float64(bareD), "x_bare")
}

// BenchmarkEventSign signs one redeem event, against a bare ed25519.Sign of
// a message of the same length.
func BenchmarkEventSign(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := testRedeem(b, "till-1")
	ev, err := peers.SignEvent(testStore, r, priv)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, len(ev.Raw)-ed25519.SignatureSize)
	interleaved(b, func() {
		if _, err := peers.SignEvent(testStore, r, priv); err != nil {
			b.Fatal(err)
		}
	}, func() { ed25519.Sign(priv, msg) })
}

// BenchmarkEventVerify decodes and verifies one event against a roster of
// 20 tills, against a bare ed25519.Verify.
func BenchmarkEventVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	terms := []peers.Terminal{{ID: "till-1", PublicKey: pub}}
	for i := 2; i <= 20; i++ {
		p, _, _ := ed25519.GenerateKey(rand.Reader)
		terms = append(terms, peers.Terminal{ID: fmt.Sprintf("till-%d", i), PublicKey: p})
	}
	roster, err := peers.NewRoster(terms...)
	if err != nil {
		b.Fatal(err)
	}
	ev, err := peers.SignEvent(testStore, testRedeem(b, "till-1"), priv)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, len(ev.Raw)-ed25519.SignatureSize)
	sig := ed25519.Sign(priv, msg)
	interleaved(b, func() {
		if _, err := peers.VerifyEvent(testStore, roster, ev.Raw); err != nil {
			b.Fatal(err)
		}
	}, func() { ed25519.Verify(pub, msg, sig) })
}

// BenchmarkCheckRedeemAsk is the pause a checkout takes to ask two peers
// about a card (three tills on loopback, test gossip timing), against a bare
// serf query answered at once by two plain serf members with the same timing.
func BenchmarkCheckRedeemAsk(b *testing.B) {
	bare := newBareQuery(b)
	tills := newCluster(b, clusterOpts{n: 3, isolatedCap: 100, threshold: 0})
	card := testCard(b, "2012345678965")
	ctx := context.Background()
	interleaved(b, func() {
		chk, err := tills[0].p.CheckRedeem(ctx, card, 1)
		if err != nil || chk.Answered != 2 {
			b.Fatalf("check: %+v, %v; want both peers to answer", chk, err)
		}
	}, bare)
}

// newBareQuery starts three plain serf members that answer any query at
// once, and returns one round trip from the first to the other two.
func newBareQuery(b *testing.B) func() {
	var nodes []*serf.Serf
	var join string
	done := make(chan struct{})
	for i := range 3 {
		ch := make(chan serf.Event, 64)
		s := benchSerf(b, i, ch)
		nodes = append(nodes, s)
		if i == 0 {
			m := s.LocalMember()
			join = fmt.Sprintf("%s:%d", m.Addr, m.Port)
		} else if _, err := s.Join([]string{join}, true); err != nil {
			b.Fatal(err)
		}
		go func() {
			for {
				select {
				case <-done:
					return
				case e := <-ch:
					if q, ok := e.(*serf.Query); ok && q.SourceNode() != s.LocalMember().Name {
						q.Respond([]byte{1})
					}
				}
			}
		}()
	}
	b.Cleanup(func() {
		for _, s := range nodes {
			s.Shutdown()
		}
		close(done)
	})
	waitFor(b, 10*time.Second, "the bare members see each other", func() bool {
		for _, s := range nodes {
			if s.NumNodes() < 3 {
				return false
			}
		}
		return true
	})
	return func() {
		resp, err := nodes[0].Query("ping", nil, &serf.QueryParam{Timeout: peers.MaxQueryTimeout})
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Close()
		for n := 0; n < 2; n++ {
			if _, ok := <-resp.ResponseCh(); !ok {
				b.Fatalf("bare query: %d answers, want 2", n)
			}
		}
	}
}

func benchSerf(b *testing.B, i int, ch chan serf.Event) *serf.Serf {
	b.Helper()
	ml := memberlist.DefaultLANConfig()
	ml.Name, ml.Label = fmt.Sprintf("bare-%d", i), testStore
	ml.BindAddr, ml.BindPort = fmt.Sprintf("127.0.0.%d", 50+i), 0
	t := fastTiming()
	ml.GossipInterval, ml.ProbeInterval, ml.ProbeTimeout = t.GossipInterval, t.ProbeInterval, t.ProbeTimeout
	ml.Logger = serfTestLogger()
	kr, err := memberlist.NewKeyring(nil, make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	ml.Keyring = kr
	sc := serf.DefaultConfig()
	sc.NodeName, sc.MemberlistConfig, sc.Logger, sc.EventCh = ml.Name, ml, serfTestLogger(), ch
	s, err := serf.Create(sc)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkOfflineRedeemedBacklog is what CheckRedeem reads from a real
// journal holding 2,000 unacknowledged ops (an outage's backlog), against
// the journal's own View of the card, which the offline policy reads too.
func BenchmarkOfflineRedeemedBacklog(b *testing.B) {
	ctx := context.Background()
	j := openSQLJournal(b, "till-a", time.Now().Add(-time.Hour))
	card, other := testCard(b, "2012345678972"), testCard(b, "2012345678989")
	ops := make(chan struct{}, 2000)
	for range cap(ops) {
		ops <- struct{}{}
	}
	close(ops)
	errs := make(chan error, 8)
	for range 8 { // group commit makes the setup bearable
		go func() {
			var err error
			for range ops {
				c := card
				if len(ops)%2 == 0 {
					c = other
				}
				id, _ := loyalty.NewOpID(time.Now(), rand.Reader)
				_, e := j.j.Append(ctx, loyalty.Op{ID: id, Kind: loyalty.OpRedeem, Terminal: "till-a", WallTime: time.Now(), Card: c, Points: -1, Offline: true})
				if e != nil && err == nil {
					err = e
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	interleaved(b, func() {
		if _, err := j.OfflineRedeemed(ctx, card); err != nil {
			b.Fatal(err)
		}
	}, func() {
		if _, err := j.j.View(ctx, card); err != nil {
			b.Fatal(err)
		}
	})
}
