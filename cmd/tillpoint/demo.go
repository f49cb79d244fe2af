package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/agent/api"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
	"github.com/tillpoint/tillpoint/loyalty"
)

const demoDescription = `
Runs a whole store in one process, with nothing to install: a cloud ledger on
SQLite in a temporary directory, one store with two tills (each a real agent
with its local API, cashier screen and journal, a simulated scanner and NFC
reader, and an emulated ESC/POS printer on TCP), and a scripted day:

  a member enrolls at the till and earns; a double-points campaign is
  published and applies; a reward is redeemed; the network to the cloud goes
  down while both tills keep earning and redeeming, the offline cap refusing
  what it must; the network returns and everything reconciles; a sale is
  returned and its points clawed back, once.

Each receipt is printed as the printer would print it. The run ends with a
summary (ops per till, cloud balances) and a check of each invariant of
DESIGN.md. With --exit the command exits 0 only when every invariant held;
without it the cashier screens stay up (their URLs are printed) until
Ctrl-C.`

// The demo's cards. They are printed masked; the summary checks that the
// clear values appear in no log line, receipt or API reply.
const (
	cardAna   = "04C0FFEE123456" // NFC UID
	cardBen   = "2012345678903"  // EAN-13, GS1 restricted circulation
	cardCarla = "2098765432109"
)

func (m *Main) runDemo(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "demo", "demo [--exit] [--keep] [--verbose]", demoDescription)
	exit := fs.Bool("exit", false, "exit after the summary: 0 only when every invariant held")
	keep := fs.Bool("keep", false, "keep the temporary directory (ledger, journals, logs)")
	verbose := fs.Bool("verbose", false, "also print the agents' and the cloud's logs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q (see 'tillpoint demo --help')", fs.Arg(0))
	}
	dir, err := os.MkdirTemp("", "tillpoint-demo-")
	if err != nil {
		return fmt.Errorf("demo: temporary directory: %w", err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	logs := &syncbuf.Buffer{}
	var logw io.Writer = logs
	if *verbose {
		logw = io.MultiWriter(logs, m.Stderr)
	}
	d := &demo{out: m.Stdout, dir: dir, logs: logs, logger: slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	defer d.close()
	if err := d.setUp(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := d.day(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	ok, err := d.summary(ctx)
	if err != nil {
		return fmt.Errorf("demo: summary: %w", err)
	}
	if *keep {
		os.WriteFile(dir+"/logs.jsonl", logs.Bytes(), 0o600)
		fmt.Fprintf(d.out, "\nThe ledger, the journals and the logs are in %s\n", dir)
	}
	if *exit {
		if !ok {
			return fmt.Errorf("demo: an invariant did not hold (see the summary)")
		}
		return nil
	}
	fmt.Fprintf(d.out, "\nThe cashier screens stay up: T1 %s/  T2 %s/  (Ctrl-C to stop)\n", d.t1.URL(), d.t2.URL())
	<-ctx.Done()
	if !ok {
		return fmt.Errorf("demo: an invariant did not hold (see the summary)")
	}
	return nil
}

type demo struct {
	out    io.Writer
	dir    string
	logs   *syncbuf.Buffer
	logger *slog.Logger
	cloud  *demoCloud
	net    *netCut
	t1, t2 *demoTerminal
	rules  *loyalty.Rules
	key    []byte
	step   int
	// replies collects every API answer, for the redaction check.
	replies bytes.Buffer
	// allowance is each card's offline allowance when the network went down.
	allowance map[string]loyalty.Points
	// refusedCap counts offline redeems the cap refused.
	refusedCap int
	// forged is what went wrong with the forged batches; empty when nothing.
	forged string
	// flowers is the sale Ben returns.
	flowers string
}

func (d *demo) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, t := range []*demoTerminal{d.t1, d.t2} {
		if t != nil {
			t.Close(ctx)
		}
	}
	if d.net != nil {
		d.net.Close()
	}
	if d.cloud != nil {
		d.cloud.Close()
	}
}

func demoRules(version uint32, campaign bool, now time.Time) *loyalty.Rules {
	r := &loyalty.Rules{
		Version: version, Program: demoProgram, Currency: "EUR", BasePoints: 1, BasePer: 100,
		Excluded:     []string{"tobacco", "giftcard"},
		Tiers:        []loyalty.Tier{{Name: "Silver", Threshold: 0}, {Name: "Gold", Threshold: 500, Multiplier: 150}},
		Rewards:      []loyalty.Reward{{ID: "coffee", Name: "Free coffee", Cost: 50}, {ID: "tote", Name: "Tote bag", Cost: 120}},
		ExpiryMonths: 12,
	}
	if campaign {
		r.Campaigns = []loyalty.Campaign{{ID: "double-weekend", Name: "Double points weekend",
			Start: now.Add(-time.Hour).Truncate(time.Second).UTC(), End: now.Add(48 * time.Hour).Truncate(time.Second).UTC(), Multiplier: 200}}
	}
	return r
}

func (d *demo) setUp(ctx context.Context) error {
	fmt.Fprintln(d.out, "tillpoint demo: one store, two tills, a cloud ledger, and a network outage")
	var err error
	if d.cloud, err = startDemoCloud(ctx, d.dir, d.logger.With("component", "cloud")); err != nil {
		return err
	}
	d.rules = demoRules(1, false, time.Now())
	if err := d.cloud.ledger.PublishRules(ctx, *d.rules, time.Now()); err != nil {
		return fmt.Errorf("publish rules: %w", err)
	}
	if d.net, err = startNetCut(strings.TrimPrefix(d.cloud.url, "http://")); err != nil {
		return err
	}
	d.key = make([]byte, 32)
	rand.Read(d.key)
	relay := func(other **demoTerminal) func(context.Context, loyalty.Op) {
		return func(ctx context.Context, op loyalty.Op) {
			if *other != nil {
				if err := relayPeerRedeem(ctx, op, (*other).w.journal); err != nil {
					d.logger.Error("relay peer redeem", "err", err)
				}
			}
		}
	}
	if d.t1, err = startTerminal(ctx, d.dir, "T1", "S1", d.net.URL(), d.key, d.cloud.ledger, d.logger, relay(&d.t2)); err != nil {
		return err
	}
	if d.t2, err = startTerminal(ctx, d.dir, "T2", "S1", d.net.URL(), d.key, d.cloud.ledger, d.logger, relay(&d.t1)); err != nil {
		return err
	}
	for _, t := range []*demoTerminal{d.t1, d.t2} {
		if err := waitFor(ctx, 10*time.Second, t.id+" to receive the rules", func() bool { return t.w.agent.Rules() != nil }); err != nil {
			return err
		}
	}
	fmt.Fprintf(d.out, "  cloud ledger  %s (SQLite in %s)\n", d.cloud.url, d.dir)
	fmt.Fprintf(d.out, "  till T1       %s/  cashier screen\n", d.t1.URL())
	fmt.Fprintf(d.out, "  till T2       %s/  cashier screen\n", d.t2.URL())
	fmt.Fprintf(d.out, "  rules v1      1 point per 1.00 EUR, tobacco and gift cards excluded, Gold tier at 500 points\n")
	return nil
}

func (d *demo) header(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n%d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "   %s\n", fmt.Sprintf(format, args...))
}

// do posts to a till and prints what the cashier sees; want says whether a
// refusal is expected.
func (d *demo) do(ctx context.Context, t *demoTerminal, what, path string, body any, wantRefusal string) (*api.OpReply, error) {
	r, p, err := t.post(ctx, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", what, t.id, err)
	}
	if p != nil {
		fmt.Fprintf(&d.replies, "%+v\n", *p)
		if wantRefusal == "" || p.Code != wantRefusal {
			return nil, fmt.Errorf("%s on %s: refused (%s): %s", what, t.id, p.Code, p.Detail)
		}
		d.say("%s on %s: REFUSED (%s) \"%s\"", what, t.id, p.Code, p.Detail)
		return nil, nil
	}
	fmt.Fprintf(&d.replies, "%+v\n", *r)
	if wantRefusal != "" {
		return nil, fmt.Errorf("%s on %s: got %+v, want a refusal %s", what, t.id, r, wantRefusal)
	}
	line := fmt.Sprintf("%s on %s: %+d points, balance %d", what, t.id, r.Points, r.Balance)
	if r.Offline {
		line += " (offline)"
	}
	if r.Notice != "" {
		line += " — " + r.Notice
	}
	d.say("%s", line)
	if r.Receipt != nil {
		rs, err := t.receipts(ctx, 1)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(strings.TrimRight(rs[0], "\n"), "\n") {
			d.say("  | %s", l)
		}
	}
	return r, nil
}

func basket(lines ...any) map[string]any {
	var ls []map[string]any
	for i := 0; i+2 < len(lines); i += 3 {
		ls = append(ls, map[string]any{"sku": lines[i], "category": lines[i+1], "quantity": 1, "amount": lines[i+2]})
	}
	return map[string]any{"currency": "EUR", "lines": ls}
}

// day is the scripted day at the store.
func (d *demo) day(ctx context.Context) error {
	t1, t2 := d.t1, d.t2

	d.header("Ana signs up at till T1 with a new NFC card, and buys groceries")
	t1.tap(cardAna)
	if err := t1.waitSession(ctx); err != nil {
		return err
	}
	d.say("tap on T1's NFC reader: %s", t1.w.agent.Session(ctx).Card)
	if _, err := d.do(ctx, t1, "enroll", "/v1/enroll", map[string]any{"cashier": "c1"}, ""); err != nil {
		return err
	}
	t1.tap(cardAna)
	if err := t1.waitSession(ctx); err != nil {
		return err
	}
	if _, err := d.do(ctx, t1, "checkout 42.50 EUR (cigarettes 9.00 excluded)", "/v1/checkout",
		map[string]any{"basket": basket("apples", "produce", 1250, "cheese", "dairy", 3000, "cigs", "tobacco", 900), "receipt": "R-1001"}, ""); err != nil {
		return err
	}

	d.header("Ben signs up at till T2 with a barcode card and earns")
	t2.scan(cardBen)
	if err := t2.waitSession(ctx); err != nil {
		return err
	}
	if _, err := d.do(ctx, t2, "enroll", "/v1/enroll", map[string]any{}, ""); err != nil {
		return err
	}
	if _, err := d.do(ctx, t2, "checkout 80.00 EUR", "/v1/checkout",
		map[string]any{"card": "barcode:" + cardBen, "basket": basket("wine", "drinks", 8000), "receipt": "R-2001"}, ""); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	d.say("both tills synced; the cloud's snapshots of Ana and Ben are on both tills")

	d.header("Marketing publishes rules v2: a double-points weekend")
	d.rules = demoRules(2, true, time.Now())
	if err := d.cloud.ledger.PublishRules(ctx, *d.rules, time.Now()); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	d.say("T1 runs rules v%d, T2 runs rules v%d", t1.w.agent.Rules().Version, t2.w.agent.Rules().Version)
	t2.tap(cardAna)
	if err := t2.waitSession(ctx); err != nil {
		return err
	}
	if _, err := d.do(ctx, t2, "Ana's checkout 60.00 EUR at T2", "/v1/checkout",
		map[string]any{"basket": basket("coffee-beans", "grocery", 2400, "olive-oil", "grocery", 3600), "receipt": "R-2002"}, ""); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}

	d.header("Ana redeems a free coffee at T1")
	if _, err := d.do(ctx, t1, "redeem Free coffee", "/v1/redeem", map[string]any{"card": "nfc:" + cardAna, "reward": "coffee"}, ""); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}

	d.header("The network to the cloud goes down; both tills keep working")
	d.allowance = map[string]loyalty.Points{}
	for name, c := range map[string]string{"Ana": "nfc:" + cardAna, "Ben": "barcode:" + cardBen} {
		tok, _ := loyalty.ParseCardToken(c)
		v, err := t1.w.journal.View(ctx, tok.Hash(d.key))
		if err != nil {
			return err
		}
		if a := v.Snapshot.Allowance; a != nil {
			d.allowance[c] = a.Points
			d.say("%s may redeem up to %d points offline at this store (the cloud's allowance)", name, a.Points)
		}
	}
	d.net.SetDown(true)
	for _, t := range []*demoTerminal{t1, t2} {
		if err := waitFor(ctx, 10*time.Second, t.id+" to notice the outage", func() bool {
			t.w.agent.RefreshSync()
			return !t.w.agent.Status().Sync.Online
		}); err != nil {
			return err
		}
	}
	d.say("both tills show the offline banner")
	if _, err := d.do(ctx, t1, "Ana's checkout 25.00 EUR", "/v1/checkout",
		map[string]any{"card": "nfc:" + cardAna, "basket": basket("bread", "bakery", 2500)}, ""); err != nil {
		return err
	}
	flowers, err := d.do(ctx, t2, "Ben's checkout 30.00 EUR", "/v1/checkout",
		map[string]any{"card": "barcode:" + cardBen, "basket": basket("flowers", "garden", 3000)}, "")
	if err != nil {
		return err
	}
	d.flowers = flowers.OpID
	if _, err := d.do(ctx, t1, "Ana redeems Free coffee", "/v1/redeem", map[string]any{"card": "nfc:" + cardAna, "reward": "coffee"}, ""); err != nil {
		return err
	}
	if _, err := d.do(ctx, t2, "Ana redeems Free coffee", "/v1/redeem", map[string]any{"card": "nfc:" + cardAna, "reward": "coffee"}, ""); err != nil {
		return err
	}
	if _, err := d.do(ctx, t1, "Ana redeems Free coffee", "/v1/redeem", map[string]any{"card": "nfc:" + cardAna, "reward": "coffee"}, "offline_cap_reached"); err != nil {
		return err
	}
	d.refusedCap++
	t2.scan(cardCarla)
	if err := t2.waitSession(ctx); err != nil {
		return err
	}
	if _, err := d.do(ctx, t2, "Carla (a card no till knows) checks out 12.00 EUR", "/v1/checkout",
		map[string]any{"basket": basket("soap", "household", 1200)}, ""); err != nil {
		return err
	}
	if _, err := d.do(ctx, t2, "Carla redeems Free coffee", "/v1/redeem", map[string]any{"card": "barcode:" + cardCarla, "reward": "coffee"}, "unknown_card"); err != nil {
		return err
	}
	for _, t := range []*demoTerminal{t1, t2} {
		d.say("%s: %d ops waiting for the cloud", t.id, t.w.uplink.State().Backlog)
	}

	d.header("The network returns; the tills ship their journals and reconcile")
	// A forged batch arrives too: it must change nothing (invariant 6).
	if err := d.forgedBatch(ctx); err != nil {
		return err
	}
	d.net.SetDown(false)
	if err := d.settle(ctx); err != nil {
		return err
	}
	d.say("both tills online, nothing waiting")

	d.header("Ben brings the flowers back: T2 voids that sale and claws its points back")
	if _, err := d.do(ctx, t2, "void of the flowers sale", "/v1/void", map[string]any{"op": d.flowers, "reason": "returned"}, ""); err != nil {
		return err
	}
	if _, err := d.do(ctx, t2, "a second void of the same sale", "/v1/void", map[string]any{"op": d.flowers}, "already_reversed"); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	return nil
}

// settle waits for both tills to ship everything and refresh their caches.
func (d *demo) settle(ctx context.Context) error {
	// Every till ships first, then every till pulls: a till that pulled
	// before the other shipped would miss the other's ops.
	for _, t := range []*demoTerminal{d.t1, d.t2} {
		if err := t.shipped(ctx); err != nil {
			return err
		}
	}
	for _, t := range []*demoTerminal{d.t1, d.t2} {
		if err := t.refresh(ctx); err != nil {
			return err
		}
	}
	return nil
}
