package main

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// store is a cloud on SQLite behind a link that can be cut, and one till
// wired as `tillpoint agent` wires it (tune, when set, changes its config).
type testStore struct {
	cloud *demoCloud
	link  *netCut
	till  *demoTerminal
	key   []byte
}

func startTestStore(t *testing.T, ctx context.Context, tweaks ...func(*config.Config, *wireTuning)) *testStore {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	s := &testStore{key: make([]byte, 32)}
	rand.Read(s.key)
	var err error
	if s.cloud, err = startDemoCloud(ctx, dir, logger); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.cloud.Close)
	if err := s.cloud.ledger.PublishRules(ctx, *demoRules(1, false, time.Now()), time.Now()); err != nil {
		t.Fatal(err)
	}
	if s.link, err = startNetCut(strings.TrimPrefix(s.cloud.url, "http://")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.link.Close)
	if s.till, err = startTerminal(ctx, dir, "T1", "S1", s.link.URL(), s.key, s.cloud.ledger, logger, nil, tweaks...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		s.till.Close(cctx)
	})
	if err := waitFor(ctx, 10*time.Second, "the rules", func() bool { return s.till.w.agent.Rules() != nil }); err != nil {
		t.Fatal(err)
	}
	return s
}

// A member who signs up at the till while the cloud is unreachable is a
// member there at once: the next checkout earns as a member (balance 0 plus
// the basket's points, the base tier), and when the link returns the
// cloud's ledger agrees with what the till printed (invariants 2 and 5).
func TestEnrollWhileTheCloudIsDownEarnsAsAMember(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := startTestStore(t, ctx)
	till := s.till

	s.link.SetDown(true)
	const card = "barcode:" + cardCarla
	enrolled, p, err := till.post(ctx, "/v1/enroll", map[string]any{"card": card, "cashier": "c1"})
	if err != nil || p != nil {
		t.Fatalf("enroll offline: %v %+v", err, p)
	}
	member := enrolled.Member.ID
	r, p, err := till.post(ctx, "/v1/checkout", map[string]any{"card": card, "basket": basket("wine", "drinks", 2500)})
	if err != nil || p != nil {
		t.Fatalf("checkout offline: %v %+v", err, p)
	}
	if !r.Member.Known || r.Member.ID != member || r.Points != 25 || r.Balance != 25 || r.Tier != "Silver" {
		t.Fatalf("checkout after an offline enrollment: got known %v member %q points %d balance %d tier %q, want true %q 25 25 Silver",
			r.Member.Known, r.Member.ID, r.Points, r.Balance, r.Tier, member)
	}
	if r.Receipt == nil || !strings.Contains(r.Receipt.Text, "25 pts") {
		t.Errorf("the receipt does not print the member's balance of 25 pts:\n%+v", r.Receipt)
	}

	s.link.SetDown(false)
	if err := till.shipped(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := loyalty.ParseCardToken(card)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.cloud.ledger.Snapshot(ctx, tok.Hash(s.key), "S1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Member != loyalty.MemberID(member) || snap.Balance != 25 || snap.Tier != "Silver" {
		t.Fatalf("the cloud after the link returned: member %q balance %d tier %q, want %q 25 Silver", snap.Member, snap.Balance, snap.Tier, member)
	}
	v, err := till.w.agent.Member(ctx, tok)
	if err != nil || !v.Known || v.Balance != 25 || v.Member != loyalty.MemberID(member) {
		t.Fatalf("the till after the ack: %+v %v, want the member at 25", v, err)
	}
}

// [sync] reaches the wiring: with an hour between pulls and a one-second
// backoff, rules published during an outage arrive as soon as the uplink
// finds the link back, not an hour later.
func TestFeedsArePulledAtOnceWhenTheLinkReturns(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := startTestStore(t, ctx, func(c *config.Config, tune *wireTuning) {
		c.Sync.PullInterval, c.Sync.MaxBackoff = config.Duration(time.Hour), config.Duration(time.Second)
		tune.feedEvery, tune.uplink = 0, func(u *uplink.Config) { u.MaxAge = 0 }
	})
	till := s.till
	if till.w.feed.Every != time.Hour || till.w.feed.MaxBackoff != time.Second {
		t.Fatalf("feed: every %s, max backoff %s; want 1h and 1s from [sync]", till.w.feed.Every, till.w.feed.MaxBackoff)
	}

	s.link.SetDown(true)
	// A sale during the outage: the uplink fails to send it and knows the link is down.
	if _, p, err := till.post(ctx, "/v1/checkout", map[string]any{"basket": basket("wine", "drinks", 2500)}); err != nil || p != nil {
		t.Fatalf("checkout offline: %v %+v", err, p)
	}
	if err := waitFor(ctx, 20*time.Second, "the uplink to see the outage", func() bool { return !till.w.uplink.State().Online && !till.w.uplink.State().LastErrorAt.IsZero() }); err != nil {
		t.Fatal(err)
	}
	// [sync] max_backoff reaches the uplink: from the fourth failure on,
	// the default backoff (doubling from 0.5s) would wait 2 to 4 s.
	seen := map[time.Time]bool{}
	if err := waitFor(ctx, 30*time.Second, "four failed rounds", func() bool {
		st := till.w.uplink.State()
		if !st.LastErrorAt.IsZero() {
			seen[st.LastErrorAt] = true
		}
		return len(seen) >= 4
	}); err != nil {
		t.Fatal(err)
	}
	if st := till.w.uplink.State(); st.NextAttempt.Sub(st.LastErrorAt) > time.Second {
		t.Errorf("the uplink waits %s after a failure, want at most [sync] max_backoff = 1s", st.NextAttempt.Sub(st.LastErrorAt))
	}
	if err := s.cloud.ledger.PublishRules(ctx, *demoRules(2, true, time.Now()), time.Now()); err != nil {
		t.Fatal(err)
	}
	s.link.SetDown(false)
	// The bound is generous for a loaded machine and far below the hour
	// between scheduled pulls.
	if err := waitFor(ctx, 30*time.Second, "rules v2 after the link returned", func() bool {
		r := till.w.agent.Rules()
		return r != nil && r.Version == 2
	}); err != nil {
		t.Fatal(err)
	}
}

// A till replaced under the same terminal ID, with a journal of its own,
// through the agent's wiring: `enroll` learns the epoch to write from
// (above the old till's), the agent opens its journal there, and the
// sales of both tills are on the ledger once (invariant 2). Before, the
// new till's first sales were taken for the old till's and never applied.
func TestReplacementTillUnderTheSameIDKeepsBothTillsSales(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := startTestStore(t, ctx)
	const card = "barcode:" + cardCarla
	for _, till := range []string{"old", "replacement"} {
		tm := s.till
		if till == "replacement" {
			var err error
			if tm, err = startTerminal(ctx, t.TempDir(), "T1", "S1", s.link.URL(), s.key, s.cloud.ledger, slog.New(slog.DiscardHandler), nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tm.Close(context.WithoutCancel(ctx)) })
			if e, _, err := tm.w.journal.Head(ctx); err != nil || e != 2 {
				t.Fatalf("replacement till's journal at epoch %d (%v), want 2", e, err)
			}
			if err := waitFor(ctx, 10*time.Second, "the rules", func() bool { return tm.w.agent.Rules() != nil }); err != nil {
				t.Fatal(err)
			}
		}
		if _, p, err := tm.post(ctx, "/v1/checkout", map[string]any{"card": card, "basket": basket("wine", "drinks", 2500)}); err != nil || p != nil {
			t.Fatalf("%s till's checkout: %v %+v", till, err, p)
		}
		if err := tm.shipped(ctx); err != nil {
			t.Fatalf("%s till: %v", till, err)
		}
	}
	tok, err := loyalty.ParseCardToken(card)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := s.cloud.ledger.Snapshot(ctx, tok.Hash(s.key), "S1", time.Now())
	if err != nil || snap.Balance != 50 {
		t.Fatalf("the card in the cloud: balance %d (%v), want 50: both tills' sales", snap.Balance, err)
	}
}
