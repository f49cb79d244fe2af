package peers_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/peers"
)

// memJournal stands in for offline/journal at this package's edge: a
// terminal's own offline redeems, its peer-ops table (deduplicated by op ID)
// and the store-wide figure the offline policy counts.
type memJournal struct {
	failing atomic.Bool // RecordPeerRedeem fails, as on a full disk

	mu   sync.Mutex
	own  map[loyalty.CardHash]loyalty.Points
	peer map[loyalty.OpID]peers.PeerRedeem
}

func newMemJournal() *memJournal {
	return &memJournal{own: make(map[loyalty.CardHash]loyalty.Points), peer: make(map[loyalty.OpID]peers.PeerRedeem)}
}

func (j *memJournal) RecordPeerRedeem(ctx context.Context, r peers.PeerRedeem) (bool, error) {
	if j.failing.Load() {
		return false, errors.New("journal: disk full")
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.peer[r.Op]; ok {
		return false, nil
	}
	j.peer[r.Op] = r
	return true, nil
}

func (j *memJournal) OfflineRedeemed(ctx context.Context, card loyalty.CardHash) (loyalty.Points, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	total := j.own[card]
	for _, r := range j.peer {
		if r.Card == card {
			total += r.Points
		}
	}
	return total, nil
}

func (j *memJournal) DropPeerRedeems(ctx context.Context, ops []loyalty.OpID) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, id := range ops {
		delete(j.peer, id)
	}
	return nil
}

func (j *memJournal) hasPeerOp(_ loyalty.CardHash, id loyalty.OpID) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.peer[id]
	return ok
}

func (j *memJournal) peerOps(_ loyalty.CardHash) map[loyalty.OpID]peers.PeerRedeem {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make(map[loyalty.OpID]peers.PeerRedeem, len(j.peer))
	for k, v := range j.peer {
		out[k] = v
	}
	return out
}

// gate is a real memberlist NetTransport that a test can cut off: while
// closed, packets and streams in both directions are dropped, as when a
// till's network cable is pulled; loss drops that share of packets.
type gate struct {
	memberlist.Transport
	closed  atomic.Bool
	lossPPM atomic.Int64 // packets dropped per million
	rnd     *mrand.Rand
	rndMu   sync.Mutex

	packets chan *memberlist.Packet
	streams chan net.Conn
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newGate(t testing.TB, ip string, seed uint64) *gate {
	t.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{ip}, BindPort: 0, Logger: serfTestLogger(),
	})
	if err != nil {
		t.Fatalf("bind gossip transport on %s: %v", ip, err)
	}
	g := &gate{
		Transport: nt, rnd: mrand.New(mrand.NewPCG(seed, 7)),
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), stop: make(chan struct{}),
	}
	g.wg.Add(2)
	go func() {
		defer g.wg.Done()
		for {
			select {
			case <-g.stop:
				return
			case pkt := <-nt.PacketCh():
				if g.drop() {
					continue
				}
				select {
				case g.packets <- pkt:
				case <-g.stop:
					return
				}
			}
		}
	}()
	go func() {
		defer g.wg.Done()
		for {
			select {
			case <-g.stop:
				return
			case c := <-nt.StreamCh():
				if g.closed.Load() {
					c.Close()
					continue
				}
				select {
				case g.streams <- c:
				case <-g.stop:
					c.Close()
					return
				}
			}
		}
	}()
	return g
}

func (g *gate) drop() bool {
	if g.closed.Load() {
		return true
	}
	ppm := g.lossPPM.Load()
	if ppm == 0 {
		return false
	}
	g.rndMu.Lock()
	defer g.rndMu.Unlock()
	return g.rnd.Int64N(1_000_000) < ppm
}

func (g *gate) port() int { return g.Transport.(*memberlist.NetTransport).GetAutoBindPort() }

func (g *gate) WriteTo(b []byte, addr string) (time.Time, error) {
	if g.drop() {
		return time.Now(), nil // lost on the wire
	}
	return g.Transport.WriteTo(b, addr)
}

func (g *gate) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if g.closed.Load() {
		return nil, fmt.Errorf("dial %s: network cut by the test", addr)
	}
	return g.Transport.DialTimeout(addr, timeout)
}

func (g *gate) PacketCh() <-chan *memberlist.Packet { return g.packets }
func (g *gate) StreamCh() <-chan net.Conn           { return g.streams }

func (g *gate) Shutdown() error {
	err := g.Transport.Shutdown()
	close(g.stop)
	g.wg.Wait()
	return err
}

var _ memberlist.Transport = (*gate)(nil)

// fastTiming makes failure detection and gossip take milliseconds, so the
// package's tests stay short under -race on a busy two-core machine.
func fastTiming() peers.Timing {
	return peers.Timing{
		GossipInterval:    50 * time.Millisecond,
		ProbeInterval:     300 * time.Millisecond,
		ProbeTimeout:      200 * time.Millisecond,
		SuspicionMult:     2,
		PushPullInterval:  time.Second,
		TCPTimeout:        500 * time.Millisecond,
		ReconnectInterval: 150 * time.Millisecond,
		ReapInterval:      time.Second,
		BroadcastTimeout:  200 * time.Millisecond,
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("TILLPOINT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func serfTestLogger() *log.Logger {
	if os.Getenv("TILLPOINT_TEST_LOG") != "" {
		return log.New(os.Stderr, "", log.Lmicroseconds)
	}
	return log.New(io.Discard, "", 0)
}

const testStore = "store-042"

// till is one terminal under test: its key, journal, peers and gate.
type till struct {
	id  string
	key ed25519.PrivateKey
	j   testJournal
	// mem is j when the cluster runs on the in-memory stand-in, else nil.
	mem  *memJournal
	p    *peers.Peers
	gate *gate
	// keyring is the till's gossip keyring file, when the cluster has one.
	keyring string
	seq     uint64
	mu      sync.Mutex
	spent   map[loyalty.CardHash]loyalty.Points // what this till approved, per card
	cfg     peers.Config                        // to restart it
}

type clusterOpts struct {
	n           int
	isolatedCap loyalty.Points
	threshold   loyalty.Points
	gossipKey   []byte
	gated       bool // real NetTransports behind a gate (partitions, loss)
	keyringDir  string
	// memJournal runs the tills on memJournal instead of a real SQLite
	// journal (offline/journal) in t.TempDir().
	memJournal bool
	seed       uint64
	// timing replaces fastTiming, when set.
	timing *peers.Timing
}

// newCluster starts n tills on 127.0.0.x addresses, all in one store
// roster, and waits until each sees the others alive.
func newCluster(t testing.TB, o clusterOpts) []*till {
	t.Helper()
	if o.gossipKey == nil {
		o.gossipKey = randomKey(t, 32)
	}
	tills := make([]*till, o.n)
	asOf := time.Now().Add(-time.Minute).UTC() // the cloud's last snapshots, before every redeem of the test
	var terms []peers.Terminal
	for i := range tills {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tl := &till{id: fmt.Sprintf("till-%c", 'a'+i), key: priv}
		if o.memJournal {
			tl.mem = newMemJournal()
			tl.j = tl.mem
		} else {
			tl.j = openSQLJournal(t, tl.id, asOf)
		}
		ip := fmt.Sprintf("127.0.0.%d", 20+i)
		term := peers.Terminal{ID: tl.id, PublicKey: pub}
		if o.gated {
			tl.gate = newGate(t, ip, o.seed+uint64(i))
			term.Addr = fmt.Sprintf("%s:%d", ip, tl.gate.port())
		}
		tills[i] = tl
		terms = append(terms, term)
	}
	roster, err := peers.NewRoster(terms...)
	if err != nil {
		t.Fatal(err)
	}
	var firstAddr string
	for i, tl := range tills {
		cfg := peers.DefaultConfig()
		cfg.Store, cfg.Terminal, cfg.Version = testStore, tl.id, "test"
		cfg.BindAddr, cfg.BindPort = fmt.Sprintf("127.0.0.%d", 20+i), 0
		cfg.Keys = [][]byte{o.gossipKey}
		cfg.SigningKey, cfg.Roster = tl.key, roster
		cfg.QueryThreshold, cfg.IsolatedRedeemCap = o.threshold, o.isolatedCap
		cfg.QueryTimeout = peers.MaxQueryTimeout
		cfg.RetryJoinInterval = 100 * time.Millisecond
		cfg.ReannounceEvery = 100 * time.Millisecond
		cfg.LeaveTimeout = 300 * time.Millisecond
		cfg.Timing = fastTiming()
		if o.timing != nil {
			cfg.Timing = *o.timing
		}
		cfg.Logger = testLogger().With("till", tl.id)
		cfg.SnapshotPath = t.TempDir() + "/serf.snapshot"
		if o.keyringDir != "" {
			tl.keyring = filepath.Join(o.keyringDir, tl.id, "keyring.json")
			cfg.KeyringPath = tl.keyring
		}
		if tl.gate != nil {
			cfg.Transport = tl.gate
		} else if firstAddr != "" {
			cfg.Join = []string{firstAddr} // no roster addresses: seed with the first till
		}
		tl.cfg = cfg
		tl.start(t, nil)
		p := tl.p
		if i == 0 {
			if firstAddr, err = p.LocalAddr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tl := range tills {
		waitFor(t, 15*time.Second, tl.id+" sees every other till alive", func() bool { return tl.p.AlivePeers() == o.n-1 })
	}
	return tills
}

// start makes and starts the till's Peers from its config, after before
// (when given) ran on the new, not yet started Peers.
func (tl *till) start(t testing.TB, before func(p *peers.Peers)) {
	t.Helper()
	p, err := peers.New(tl.cfg, tl.j)
	if err != nil {
		t.Fatalf("new peers for %s: %v", tl.id, err)
	}
	if before != nil {
		before(p)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("start peers for %s: %v", tl.id, err)
	}
	tl.p = p
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %s: %v", tl.id, err)
		}
	})
}

// stop shuts the till's Peers down (a graceful leave) and keeps its gossip
// port for the restart, as a till with a fixed port would.
func (tl *till) stop(t testing.TB) {
	t.Helper()
	addr, err := tl.p.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	if tl.cfg.BindPort, err = strconv.Atoi(port); err != nil {
		t.Fatal(err)
	}
	if err := tl.p.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown %s: %v", tl.id, err)
	}
}

func randomKey(t testing.TB, n int) []byte {
	t.Helper()
	k := make([]byte, n)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func testCard(t testing.TB, value string) loyalty.CardHash {
	t.Helper()
	tok, err := loyalty.NewCardToken(loyalty.CardBarcode, value)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Hash(loyalty.CardKey("program-key"))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// redeem runs the offline checkout of a redeem as the agent will: ask the
// peers (CheckRedeem), apply the store-wide cap the journal's offline policy
// applies to what the journal counts, record the op, announce it.
func (tl *till) redeem(t testing.TB, card loyalty.CardHash, pts, storeCap loyalty.Points) (peers.Check, *loyalty.Op, error) {
	t.Helper()
	ctx := context.Background()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	c, err := tl.p.CheckRedeem(ctx, card, pts)
	if err != nil {
		return c, nil, err
	}
	tl.seq++
	now := time.Now()
	id, err := loyalty.NewOpID(now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	op := &loyalty.Op{ID: id, Kind: loyalty.OpRedeem, Store: testStore, Terminal: tl.id, Epoch: 1, Seq: tl.seq,
		WallTime: now, Card: card, Points: -pts, Offline: true}
	op, err = tl.j.redeemOffline(ctx, op, c, storeCap)
	if err != nil {
		return c, nil, err
	}
	if tl.spent == nil {
		tl.spent = make(map[loyalty.CardHash]loyalty.Points)
	}
	tl.spent[card] += pts
	if err := tl.p.Broadcast(ctx, op); err != nil {
		t.Errorf("%s: broadcast: %v", tl.id, err)
	}
	return c, op, nil
}
