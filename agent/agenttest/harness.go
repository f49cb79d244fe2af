package agenttest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/api"
	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// CardKey returns the card hash key tests use.
func CardKey() loyalty.CardKey { return loyalty.CardKey("tillpoint-test-card-key-32-bytes") }

// Uplink is a switchable sync state.
type Uplink struct {
	mu sync.Mutex
	s  agent.SyncState
}

// Set replaces the state.
func (u *Uplink) Set(s agent.SyncState) {
	u.mu.Lock()
	u.s = s
	u.mu.Unlock()
}

// State returns the state.
func (u *Uplink) State() agent.SyncState {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.s
}

// Printer records print jobs; a job ID seen before is not printed again.
type Printer struct {
	mu   sync.Mutex
	Jobs map[string][]byte
	N    int // jobs printed
}

// Print records a job.
func (p *Printer) Print(_ context.Context, id string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.Jobs == nil {
		p.Jobs = map[string][]byte{}
	}
	if _, ok := p.Jobs[id]; ok {
		return nil
	}
	p.Jobs[id] = data
	p.N++
	return nil
}

// Count returns how many jobs were printed.
func (p *Printer) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.N
}

// Rules returns a small program: 1 point per 1.00 EUR, tobacco excluded,
// a Gold tier at 1000, a coffee reward for 50 points.
func Rules() *loyalty.Rules {
	return &loyalty.Rules{
		Version: 1, Program: "test", Currency: "EUR", BasePoints: 1, BasePer: 100,
		Excluded: []string{"tobacco"},
		Tiers:    []loyalty.Tier{{Name: "Silver", Threshold: 0}, {Name: "Gold", Threshold: 1000, Multiplier: 150}},
		Rewards:  []loyalty.Reward{{ID: "coffee", Name: "Free coffee", Cost: 50}},
	}
}

// Harness is an agent on a real journal, and its API server on 127.0.0.1:0.
type Harness struct {
	Agent  *agent.Agent
	Server *api.Server
	// J is the real journal; Journal is what the agent sees of it, with
	// failures on demand.
	J       *journal.Journal
	Journal *Faulty
	Uplink  *Uplink
	Printer *Printer
	URL     string
	Now     func() time.Time
	// Peers is the till's store peers when Options.Peers made them.
	Peers *agent.StorePeers
	once  sync.Once
}

// Options tune a Harness.
type Options struct {
	Receipts agent.Receipts
	Config   func(*config.Config)
	Screen   http.Handler
	Now      func() time.Time
	// StateDir is the agent's state directory; default a fresh t.TempDir().
	StateDir string
	// Peers, when set, makes the till's store peers (agent.NewStorePeers)
	// from the final config and the real journal; the harness wraps the
	// agent's journal with them, starts them after the agent and shuts
	// them down before the journal closes.
	Peers func(cfg *config.Config, j *journal.Journal) (*agent.StorePeers, error)
}

// Start starts an agent with a fresh state directory and its API.
func Start(t testing.TB, o Options) *Harness {
	t.Helper()
	cfg := config.Default()
	cfg.StateDir = o.StateDir
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	cfg.Terminal, cfg.Store = "T1", "S1"
	cfg.Listen = "127.0.0.1:0"
	if o.Config != nil {
		o.Config(cfg)
	}
	h := &Harness{Uplink: &Uplink{}, Printer: &Printer{}, Now: o.Now}
	if h.Now == nil {
		h.Now = time.Now
	}
	j, err := journal.Open(context.Background(), filepath.Join(cfg.StateDir, "journal.db"),
		journal.Options{Terminal: cfg.Terminal, Store: cfg.Store, Now: h.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h.J = j
	h.Journal = &Faulty{Journal: agent.JournalStore{J: j, Policy: journal.Policy{
		MaxSnapshotAge: cfg.Offline.MaxSnapshotAge.D(), OfflineRedeemCap: cfg.Offline.RedeemCapPerDay, Location: time.UTC}}}
	h.Uplink.Set(agent.SyncState{Online: true})
	ctx := context.Background()
	if o.Receipts == nil {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		r, err := agent.NewReceiptRenderer(cfg, key)
		if err != nil {
			t.Fatal(err)
		}
		o.Receipts = r
	}
	opts := agent.Options{Config: cfg, Journal: h.Journal, CardKey: CardKey(), Receipts: o.Receipts,
		Printer: h.Printer, Uplink: h.Uplink, Version: "test", Now: h.Now, SyncPoll: 50 * time.Millisecond, Backlog: j.Backlog}
	if o.Peers != nil {
		if h.Peers, err = o.Peers(cfg, j); err != nil {
			j.Close()
			t.Fatal(err)
		}
		opts.Journal, opts.Peers = h.Peers.Journal(h.Journal), h.Peers
	}
	a, err := agent.Create(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetRules(ctx, Rules()); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if h.Peers != nil {
		if err := h.Peers.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	srv := api.NewServer(a, cfg.Listen)
	srv.Screen = o.Screen
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	h.Agent, h.Server, h.URL = a, srv, srv.URL()
	t.Cleanup(func() { h.Close(t) })
	return h
}

// Close stops the server, the agent and the journal; safe to call twice.
func (h *Harness) Close(t testing.TB) {
	h.once.Do(func() {
		// A bound for cleanup, not a timing assertion: generous, because a
		// race-enabled run on a loaded 2-core machine is slow to drain.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Server.Close(ctx); err != nil {
			t.Errorf("close server: %v", err)
		}
		if err := h.Agent.Shutdown(ctx); err != nil {
			t.Errorf("shutdown agent: %v", err)
		}
		if h.Peers != nil {
			if err := h.Peers.Shutdown(ctx); err != nil {
				t.Errorf("shutdown store peers: %v", err)
			}
		}
		if err := h.J.Close(); err != nil {
			t.Errorf("close journal: %v", err)
		}
	})
}

// PutSnapshot stores a member snapshot in the journal, as an ack would.
func (h *Harness) PutSnapshot(t testing.TB, s loyalty.Snapshot) {
	t.Helper()
	if err := h.J.PutSnapshots(context.Background(), []loyalty.Snapshot{s}); err != nil {
		t.Fatal(err)
	}
}

// Ops returns every op in the journal.
func (h *Harness) Ops(t testing.TB) []loyalty.Op {
	t.Helper()
	ops, err := h.J.OpsAfter(context.Background(), 0, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// Post sends a JSON body with an Idempotency-Key (none when key is "")
// and decodes the reply into out (when not nil); it returns the status and
// the raw body.
func (h *Harness) Post(t testing.TB, path, key string, body, out any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", h.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return do(t, req, out)
}

// Get fetches path and decodes the reply into out (when not nil).
func (h *Harness) Get(t testing.TB, path string, out any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", h.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req, out)
}

func do(t testing.TB, req *http.Request, out any) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", req.Method, req.URL.Path, b, err)
		}
	}
	return resp.StatusCode, b
}

// Card returns a card token from its "kind:value" form.
func Card(t testing.TB, s string) loyalty.CardToken {
	t.Helper()
	c, err := loyalty.ParseCardToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s did not happen", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Basket is a basket of EUR lines given as sku, category, amount triples.
func Basket(lines ...any) map[string]any {
	var ls []map[string]any
	for i := 0; i+2 < len(lines); i += 3 {
		ls = append(ls, map[string]any{"sku": lines[i], "category": lines[i+1], "quantity": 1, "amount": lines[i+2]})
	}
	return map[string]any{"currency": "EUR", "lines": ls}
}

// Key returns a fresh idempotency key.
func Key(t testing.TB) string { return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()) }
