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
	"github.com/tillpoint/tillpoint/offline/peers"
)

// BenchmarkEventSign signs one redeem event; x_bare is its cost over a bare
// ed25519.Sign of the same number of bytes, measured in the same run.
func BenchmarkEventSign(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := testRedeem(b, "till-1")
	ev, err := peers.SignEvent(testStore, r, priv)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, len(ev.Raw)-ed25519.SignatureSize)
	bare := baseline(func() { ed25519.Sign(priv, msg) })
	for b.Loop() {
		if _, err := peers.SignEvent(testStore, r, priv); err != nil {
			b.Fatal(err)
		}
	}
	reportRatio(b, bare)
}

// BenchmarkEventVerify decodes and verifies one event against a roster of
// 20 tills; x_bare compares it with a bare ed25519.Verify.
func BenchmarkEventVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	terms := []peers.Terminal{{ID: "till-1", PublicKey: pub}}
	for i := 2; i <= 20; i++ {
		p, _, _ := ed25519.GenerateKey(rand.Reader)
		terms = append(terms, peers.Terminal{ID: "till-" + string(rune('a'+i)), PublicKey: p})
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
	bare := baseline(func() { ed25519.Verify(pub, msg, sig) })
	for b.Loop() {
		if _, err := peers.VerifyEvent(testStore, roster, ev.Raw); err != nil {
			b.Fatal(err)
		}
	}
	reportRatio(b, bare)
}

// BenchmarkCheckRedeemAsk is the pause a checkout takes to ask two peers
// about a card (three tills on loopback); x_bare compares it with a bare
// serf query answered at once by two plain serf members.
func BenchmarkCheckRedeemAsk(b *testing.B) {
	bare := bareQuery(b)
	tills := newCluster(b, clusterOpts{n: 3, isolatedCap: 100, threshold: 0})
	card := testCard(b, "2012345678965")
	ctx := context.Background()
	for b.Loop() {
		chk, err := tills[0].p.CheckRedeem(ctx, card, 1)
		if err != nil || chk.Answered != 2 {
			b.Fatalf("check: %+v, %v; want both peers to answer", chk, err)
		}
	}
	reportRatio(b, bare)
}

// baseline measures f's cost in this process (testing.Benchmark cannot
// nest inside a benchmark): it doubles the batch until it runs 200 ms.
func baseline(f func()) float64 {
	for n := 1; ; n *= 2 {
		start := time.Now()
		for range n {
			f()
		}
		if d := time.Since(start); d > 200*time.Millisecond {
			return float64(d.Nanoseconds()) / float64(n)
		}
	}
}

func reportRatio(b *testing.B, bareNs float64) {
	b.Helper()
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(bareNs, "bare-ns/op")
	b.ReportMetric(per/bareNs, "x_bare")
}

// bareQuery measures a serf query answered at once by two plain members.
func bareQuery(b *testing.B) float64 {
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
	for _, s := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for s.NumNodes() < 3 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	defer func() {
		for _, s := range nodes {
			s.Shutdown()
		}
		close(done)
	}()
	return baseline(func() {
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
	})
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
