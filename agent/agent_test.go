package agent_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/loyalty"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestSessionClosesWhenIdle(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)}
	h := agenttest.Start(t, agenttest.Options{Now: c.Now, Config: func(cfg *config.Config) { cfg.Session.IdleTimeout = config.Duration(time.Minute) }})
	ctx := context.Background()
	events, stop := h.Agent.Subscribe()
	defer stop()
	<-events // state
	if _, err := h.Agent.PresentCard(ctx, agenttest.Card(t, "nfc:04A1B2C3"), agent.SourceNFC); err != nil {
		t.Fatal(err)
	}
	c.Add(59 * time.Second)
	if s := h.Agent.Session(ctx); !s.Open {
		t.Fatalf("session closed before its idle timeout")
	}
	c.Add(2 * time.Second)
	agenttest.Eventually(t, 5*time.Second, "the idle session closing", func() bool { return !h.Agent.Session(ctx).Open })
	var closed string
	for e := range events {
		if v, ok := e.Data.(agent.SessionView); ok && v.Closed != "" {
			closed = v.Closed
			break
		}
	}
	if closed != "idle" {
		t.Errorf("close reason: got %q, want idle", closed)
	}
}

func TestShutdownIsSafeTwiceAndRefusesNewOps(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	ctx := context.Background()
	if err := h.Agent.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Agent.Shutdown(ctx); err != nil {
		t.Errorf("second shutdown: got %v, want nil", err)
	}
	b := loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "a", Quantity: 1, Amount: 100}}}
	_, err := h.Agent.Checkout(ctx, "k", agent.CheckoutRequest{Basket: b})
	if agent.ErrorCode(err) != agent.CodeUnavailable {
		t.Errorf("checkout after shutdown: got %v, want unavailable", err)
	}
}

func TestOlderRulesAreIgnored(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	ctx := context.Background()
	r := agenttest.Rules()
	r.Version = 5
	if err := h.Agent.SetRules(ctx, r); err != nil {
		t.Fatal(err)
	}
	old := agenttest.Rules()
	old.Version = 3
	if err := h.Agent.SetRules(ctx, old); err != nil {
		t.Fatal(err)
	}
	if got := h.Agent.Rules().Version; got != 5 {
		t.Errorf("rules version: got %d, want 5", got)
	}
	bad := agenttest.Rules()
	bad.Version = 6
	bad.BasePer = 0
	if err := h.Agent.SetRules(ctx, bad); err == nil {
		t.Errorf("invalid rules: got no error")
	}
}

func TestRulesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	h := agenttest.Start(t, agenttest.Options{StateDir: dir})
	r := agenttest.Rules()
	r.Version = 9
	ctx := context.Background()
	if err := h.Agent.SetRules(ctx, r); err != nil {
		t.Fatal(err)
	}
	h.Close(t)
	h = agenttest.Start(t, agenttest.Options{StateDir: dir})
	if r := h.Agent.Rules(); r == nil || r.Version != 9 {
		t.Errorf("rules after restart: got %+v, want version 9", r)
	}
}

func TestCreateRefusesMissingPieces(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.StateDir, cfg.Terminal = t.TempDir(), "T1"
	j := &agenttest.Faulty{}
	if _, err := agent.Create(ctx, agent.Options{Config: cfg, CardKey: agenttest.CardKey()}); err == nil {
		t.Errorf("no journal: got no error")
	}
	if _, err := agent.Create(ctx, agent.Options{Config: cfg, Journal: j, CardKey: []byte("short")}); err == nil {
		t.Errorf("short card key: got no error")
	}
	cfg.Terminal = ""
	if _, err := agent.Create(ctx, agent.Options{Config: cfg, Journal: j, CardKey: agenttest.CardKey()}); err == nil {
		t.Errorf("no terminal: got no error")
	}
}

// TestRetriedOfflineRedeemMeetsThePolicyAtItsRetry (invariant 4): an
// offline redeem whose append failed (the journal was briefly unavailable)
// is left pending; the POS retries it with the same Idempotency-Key long
// after. The retry is judged by the policy as it stands then: a snapshot
// now past MaxSnapshotAge (72h by default) refuses it.
func TestRetriedOfflineRedeemMeetsThePolicyAtItsRetry(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := &clock{t: start}
	h := agenttest.Start(t, agenttest.Options{Now: c.Now})
	h.Uplink.Set(agent.SyncState{Online: false})
	card := agenttest.Card(t, "barcode:2012345678903")
	h.PutSnapshot(t, loyalty.Snapshot{Card: card.Hash(agenttest.CardKey()), Member: "m-1", Balance: 1000, AsOf: start})

	c.Add(71 * time.Hour) // the snapshot is 71h old: still usable
	h.Journal.SetFail(errors.New("disk hiccup"), false)
	if _, err := h.Agent.Redeem(ctx, "K-1", agent.RedeemRequest{Card: card, Reward: "coffee"}); err == nil {
		t.Fatal("redeem with a failing journal: got no error")
	}
	h.Journal.SetFail(nil, false)

	c.Add(29 * time.Hour) // now 100h old: the policy must refuse a redeem
	if _, err := h.Agent.Redeem(ctx, "K-2", agent.RedeemRequest{Card: card, Reward: "coffee"}); !errors.Is(err, agent.ErrSnapshotTooOld) {
		t.Fatalf("fresh redeem on a 100h-old snapshot: got %v, want ErrSnapshotTooOld", err)
	}
	res, err := h.Agent.Redeem(ctx, "K-1", agent.RedeemRequest{Card: card, Reward: "coffee"})
	if err == nil {
		t.Fatalf("retried redeem on a 100h-old snapshot was recorded (op %s at %s, now %s): the policy ran at the op's old wall time",
			res.OpID, res.At.Format(time.RFC3339), c.Now().Format(time.RFC3339))
	}
}
