package uplink_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/enroll"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// The end-to-end tests put the real cloud (cloud/server over a real SQLite
// ledger, checked for conservation when each test ends) and real uplinks
// over real journals in one process, talking HTTP on 127.0.0.1.

const e2eProgram = "prog-e2e"

type cloudEnv struct {
	ledger *sqlstore.Store
	srv    *server.Server
	url    string
}

func newCloud(t testing.TB) *cloudEnv {
	t.Helper()
	return newCloudOn(t, storetest.OpenSQLite(t, quietLedger))
}

var quietLedger = sqlstore.Options{Logger: slog.New(slog.DiscardHandler)}

// ledgers are the cloud's storage backends; PostgreSQL is skipped without
// TILLPOINT_TEST_POSTGRES (and fails without it under TILLPOINT_HIL=require).
var ledgers = []struct {
	name  string
	open  func(testing.TB) *sqlstore.Store
	seeds []uint64
}{
	{"sqlite", func(t testing.TB) *sqlstore.Store { return storetest.OpenSQLite(t, quietLedger) }, []uint64{11}},
	{"postgres", func(t testing.TB) *sqlstore.Store { return storetest.OpenPostgres(t, quietLedger) }, []uint64{13}},
}

// newCloudOn serves ledger with the real cloud server on 127.0.0.1:0.
func newCloudOn(t testing.TB, ledger *sqlstore.Store) *cloudEnv {
	t.Helper()
	key, _, err := server.LoadOrCreateKey(filepath.Join(t.TempDir(), "cloud.key"))
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(ledger, key, e2eProgram)
	srv.Addr = "127.0.0.1:0"
	srv.Logger = quietLogger(t)
	if err := srv.Open(); err != nil {
		t.Fatalf("open cloud server: %v", err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	rules := loyalty.Rules{Version: 1, Program: e2eProgram, Currency: "EUR", BasePoints: 1, BasePer: 100}
	if err := ledger.PublishRules(context.Background(), rules, time.Now()); err != nil {
		t.Fatalf("publish rules: %v", err)
	}
	return &cloudEnv{ledger: ledger, srv: srv, url: srv.URL()}
}

// terminal is an enrolled terminal: its enrollment and its journal.
type terminal struct {
	st *enroll.State
	j  *journal.Journal
}

// enroll enrolls terminal name of store "S-01" through the real
// enrollment API and opens its journal.
func (c *cloudEnv) enroll(t testing.TB, name string) *terminal {
	t.Helper()
	ctx := context.Background()
	code, err := server.CreateEnrollCode(ctx, c.ledger, "S-01", name, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	st, err := enroll.NewClient().Enroll(ctx, c.url, code.Code, filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatalf("enroll %s: %v", name, err)
	}
	return &terminal{st: st, j: openJournalFrom(t, filepath.Join(t.TempDir(), name+".db"), name, st.Epoch)}
}

func (tm *terminal) config(t testing.TB, url string) uplink.Config {
	t.Helper()
	s, err := batch.NewSigner(tm.st.Terminal, tm.st.Program, tm.st.Key)
	if err != nil {
		t.Fatal(err)
	}
	return fastConfig(url, s, tm.st.CloudKey, t)
}

// checkBalancesOf checks the cloud's balances against the model ops make:
// each op applied once.
func (c *cloudEnv) checkBalancesOf(t testing.TB, ops []loyalty.Op) {
	t.Helper()
	model := map[loyalty.CardHash]loyalty.Points{}
	for _, o := range ops {
		model[o.Card] += o.Points
	}
	c.checkBalances(t, model)
}

// wantWatermarks checks the cloud's watermark of terminal in each epoch.
func (c *cloudEnv) wantWatermarks(t testing.TB, terminal string, want map[uint32]uint64) {
	t.Helper()
	for e, w := range want {
		if wm, _, err := c.ledger.Watermark(context.Background(), terminal, e); err != nil || wm != w {
			t.Errorf("cloud watermark of %s's epoch %d: %d (%v), want %d", terminal, e, wm, err, w)
		}
	}
}

// checkBalances compares every card's balance in the cloud with the model:
// points earned less points redeemed, which is the balance, or minus the
// debt when redeems took more than there was (whatever the order the cloud
// applied them in). A card never holds both points and a debt.
func (c *cloudEnv) checkBalances(t testing.TB, model map[loyalty.CardHash]loyalty.Points) {
	t.Helper()
	for card, want := range model {
		snap, err := c.ledger.Snapshot(context.Background(), card, "S-01", time.Now())
		if err != nil {
			t.Fatalf("snapshot %s: %v", card.Short(), err)
		}
		if snap.Balance-snap.Debt != want || snap.Balance > 0 && snap.Debt > 0 {
			t.Errorf("card %s: cloud balance %d and debt %d, model %d", card.Short(), snap.Balance, snap.Debt, want)
		}
	}
}

// checkWatermark compares the cloud's watermark for a terminal with its journal.
func (c *cloudEnv) checkWatermark(t testing.TB, tm *terminal, want uint64) {
	t.Helper()
	wm, _, err := c.ledger.Watermark(context.Background(), tm.st.Terminal, 1)
	if err != nil || wm != want {
		t.Errorf("%s: cloud watermark %d (%v), want %d", tm.st.Terminal, wm, err, want)
	}
	if e, s, _ := tm.j.Acked(context.Background()); e != 1 || s != want {
		t.Errorf("%s: journal watermark %d/%d, want 1/%d", tm.st.Terminal, e, s, want)
	}
}

// Invariant 2 end to end: several terminals earn and redeem on shared cards
// while their uplinks run behind the seeded fault proxy (drop requests and responses, duplicate,
// delay, reorder, truncate, 500, 503). After the network heals the cloud
// holds every op exactly once: each watermark is the journal's last
// sequence, each balance equals the test's own model (a second apply of
// any op would raise one), and the ledger's check passes.
//
// TILLPOINT_SOAK=N adds N seeds drawn at random to each ledger's fixed
// ones; a failing subtest names its seed, to be added to the fixed ones.
func TestE2EFaultyNetworkEveryOpExactlyOnce(t *testing.T) {
	for _, l := range ledgers {
		for _, seed := range soakSeeds(t, l.seeds) {
			t.Run(fmt.Sprintf("%s/seed=%d", l.name, seed), func(t *testing.T) {
				e2eFaultyNetwork(t, newCloudOn(t, l.open(t)), seed)
			})
		}
	}
}

// soakSeeds returns seeds and the random ones TILLPOINT_SOAK asks for.
func soakSeeds(t *testing.T, seeds []uint64) []uint64 {
	n, err := strconv.Atoi(cmp.Or(os.Getenv("TILLPOINT_SOAK"), "0"))
	if err != nil || n < 0 {
		t.Fatalf("TILLPOINT_SOAK=%q: want a number of extra seeds", os.Getenv("TILLPOINT_SOAK"))
	}
	seeds = slices.Clone(seeds)
	for range n {
		seeds = append(seeds, rand.Uint64N(1<<32))
	}
	return seeds
}

func e2eFaultyNetwork(t *testing.T, c *cloudEnv, seed uint64) {
	const terminals, perTerminal = 3, 100
	proxy := newFaultProxy(t, c.url, seed, 0.4)
	url := serve(t, proxy)

	model := map[loyalty.CardHash]loyalty.Points{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	tms := make([]*terminal, terminals)
	ups := make([]*uplink.Uplink, terminals)
	for i := range terminals {
		tm := c.enroll(t, fmt.Sprintf("T-%02d", i+1))
		tms[i] = tm
		cfg := tm.config(t, url)
		cfg.MaxOps, cfg.RequestTimeout = 3+i*11, 2*time.Second
		u := mustUplink(t, tm.j, cfg)
		ups[i] = u
		u.Start(context.Background())
		t.Cleanup(func() { u.Shutdown(context.Background()) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			var appended []loyalty.Op
			for n := range perTerminal {
				op := earn(i*perTerminal+n, 13)
				switch {
				case n%10 == 9:
					// A reversal of an earn or a redeem of this
					// till's, perhaps of points spent since.
					target := appended[n-4]
					op.Kind, op.Reverses, op.Card, op.Points, op.Basket = loyalty.OpReverse, target.ID, target.Card, -target.Points, nil
				case n%4 == 3:
					// Redeems on the cards the other tills earn on,
					// some beyond the balance: debts, in any order.
					op.Kind, op.Points, op.Basket = loyalty.OpRedeem, -loyalty.Points(n%90+20), nil
				}
				o, err := tm.j.Append(context.Background(), op)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				appended = append(appended, o)
				u.Notify()
				mu.Lock()
				model[o.Card] += o.Points
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if !slices.ContainsFunc(slices.Collect(maps.Values(model)), func(p loyalty.Points) bool { return p < 0 }) {
		t.Fatal("no card ends in debt: the workload no longer tests redeems beyond the balance")
	}
	healAndDrain(t, proxy, ups, perTerminal)
	for _, tm := range tms {
		c.checkWatermark(t, tm, perTerminal)
	}
	c.checkBalances(t, model)
}

// The uplink process is SIGKILLed after the real cloud applied its first
// batch and before the ack reached it; the restarted uplink resends the
// sealed bytes, the cloud answers with the duplicate's ack, and every op is
// on the ledger once.
func TestE2EKilledBetweenSendAndAck(t *testing.T) {
	if os.Getenv("TILLPOINT_UPLINK_CHILD") != "" {
		t.Skip("runs as the parent only")
	}
	c := newCloud(t)
	tm := c.enroll(t, "T-01")
	ops := appendOps(t, tm.j, earns(0, 120, 5))
	model := map[loyalty.CardHash]loyalty.Points{}
	for _, o := range ops {
		model[o.Card] += o.Points
	}
	if err := tm.j.Close(); err != nil {
		t.Fatal(err)
	}
	fwd := newFaultProxy(t, c.url, 1, 0)
	applied := make(chan struct{}, 1)
	var hang atomic.Bool
	hang.Store(true)
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hang.Load() {
			fwd.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if status, _, _ := fwd.forward(heldRequest{path: r.URL.RequestURI(), ctype: r.Header.Get("Content-Type"), body: body}); status == http.StatusOK {
			select {
			case applied <- struct{}{}:
			default:
			}
		}
		<-r.Context().Done() // the ack never leaves
	}))

	runChildUntilApplied(t, "TestE2EUplinkChildProcess", applied, 30*time.Second,
		"CHILD_JOURNAL="+tm.j.Path(), "CHILD_URL="+url, "CHILD_ENROLLMENT="+tm.st.Dir)
	hang.Store(false)

	if wm, _, _ := c.ledger.Watermark(context.Background(), "T-01", 1); wm == 0 {
		t.Fatalf("cloud watermark after the kill: got 0, want the first batch applied")
	}
	tm.j = openJournalAt(t, tm.j.Path(), "T-01")
	if sealed, err := tm.j.Sealed(context.Background()); err != nil || len(sealed) != 1 {
		t.Fatalf("outbox after the kill: got %d sealed batches (%v), want 1", len(sealed), err)
	}
	if e, s, _ := tm.j.Acked(context.Background()); e != 0 || s != 0 {
		t.Fatalf("journal watermark after the kill: got %d/%d, want 0/0", e, s)
	}
	u := mustUplink(t, tm.j, tm.config(t, url))
	syncWithin(t, u, time.Minute)
	c.checkWatermark(t, tm, 120)
	c.checkBalances(t, model)
	if st := u.State(); st.Sent < 1 {
		t.Errorf("restarted uplink: got %d batches acknowledged, want at least 1", st.Sent)
	}
}

// TestE2EUplinkChildProcess is the uplink process that
// TestE2EKilledBetweenSendAndAck kills; it does nothing in a normal run.
func TestE2EUplinkChildProcess(t *testing.T) {
	if os.Getenv("TILLPOINT_UPLINK_CHILD") == "" {
		t.Skip("only runs as TestE2EKilledBetweenSendAndAck's child process")
	}
	st, err := enroll.Load(os.Getenv("CHILD_ENROLLMENT"))
	if err != nil {
		t.Fatal(err)
	}
	tm := &terminal{st: st, j: openJournalAt(t, os.Getenv("CHILD_JOURNAL"), st.Terminal)}
	cfg := tm.config(t, os.Getenv("CHILD_URL"))
	cfg.RequestTimeout = time.Minute
	u := mustUplink(t, tm.j, cfg)
	u.Sync(context.Background()) // killed in the middle
}

// A journal restored from a copy taken before its acks, with the same ops
// but an uplink that cuts other batch boundaries: the cloud compares each
// batch below its watermark op by op with what it applied and acknowledges
// it as a replay; the uplink cuts its batches to end at the cloud's
// watermark, takes no op as delivered on the watermark's word, and the
// ops appended since reach the cloud once.
func TestE2ERestoredJournalOtherBoundaries(t *testing.T) {
	c := newCloud(t)
	tm := c.enroll(t, "T-01")
	ops := appendOps(t, tm.j, earns(0, 100, 7))
	cfg := tm.config(t, c.url)
	u := mustUplink(t, tm.j, cfg)
	syncWithin(t, u, time.Minute)

	restored := openJournal(t, "T-01") // a new directory: the restored copy
	for _, o := range ops {
		if _, err := restored.Append(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	fresh := appendOps(t, restored, earns(1000, 10, 7))
	tm.j = restored
	cfg = tm.config(t, c.url)
	cfg.MaxOps = 30
	u2 := mustUplink(t, restored, cfg)
	syncWithin(t, u2, time.Minute)
	if st := u2.State(); st.Gaps != 0 || st.Sent != 5 {
		t.Errorf("restored uplink: got %d refused positions and %d batches acknowledged, want none refused and 5 (the 100 restored ops in batches of 30 ending at the cloud's watermark, then the new ops)", st.Gaps, st.Sent)
	}
	c.checkWatermark(t, tm, 110)
	model := map[loyalty.CardHash]loyalty.Points{}
	for _, o := range append(ops, fresh...) {
		model[o.Card] += o.Points
	}
	c.checkBalances(t, model)
}

// A journal restored from a backup together with its epoch sidecar (so
// the journal cannot tell), which then records new sales under sequence
// numbers the cloud already holds other ops at. The cloud's answer for the
// restored ops carries its watermark, beyond them; that watermark used to
// be taken as an acknowledgement of the journal's own new ops at those
// sequences, which then never reached the cloud. Now the cloud compares
// them op by op and says they diverge: the uplink marks nothing it was
// not acknowledged for, keeps every new op, and reports the divergence.
func TestE2ERestoredJournalWithNewOpsLosesNone(t *testing.T) {
	c := newCloud(t)
	tm := c.enroll(t, "T-01")
	ops := appendOps(t, tm.j, earns(0, 120, 7))
	u := mustUplink(t, tm.j, tm.config(t, c.url))
	syncWithin(t, u, time.Minute)

	restored := openJournal(t, "T-01") // the backup held ops 1..100
	for _, o := range ops[:100] {
		if _, err := restored.Append(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	fresh := appendOps(t, restored, earns(1000, 30, 7)) // 101..130
	tm.j = restored
	cfg := tm.config(t, c.url)
	cfg.MaxOps = 40
	u2 := mustUplink(t, restored, cfg)
	u2.Start(context.Background())
	waitFor(t, "the divergence reported", func() bool { return strings.Contains(u2.State().LastError, uplink.ErrDiverged.Error()) })
	if err := u2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Acknowledged: only batches the cloud matched op by op (the one
	// that mixes restored and new ops stays unacknowledged whole).
	e, acked, _ := restored.Acked(context.Background())
	if e != 1 || acked > 100 {
		t.Errorf("restored journal acknowledged up to %d/%d, want at most 1/100: its own ops from 101 on are not the cloud's", e, acked)
	}
	if st, _ := restored.Stats(context.Background()); st.Unacked != int64(100+len(fresh))-int64(acked) {
		t.Errorf("restored journal keeps %d unacknowledged ops, want every op after %d", st.Unacked, acked)
	}
	model := map[loyalty.CardHash]loyalty.Points{}
	for _, o := range ops {
		model[o.Card] += o.Points
	}
	c.checkBalances(t, model) // the cloud still holds exactly the first journal's 120
}

// A till replaced under the same terminal ID, with a journal of its own:
// the cloud holds the old till's ops at epoch 1 seq 1..50, and the new
// till's journal would also start at epoch 1. Its first batch was refused
// as a rewind, the uplink skipped to the old till's watermark, and the new
// till's ops 1..50 were taken as delivered. Now the enrollment names the
// epoch to write from (2, above the old till's), and every op of both
// tills is on the ledger once.
func TestE2EReplacementTillUnderTheSameIDLosesNone(t *testing.T) {
	c := newCloud(t)
	old := c.enroll(t, "T-01")
	oldOps := appendOps(t, old.j, earns(0, 50, 7))
	u := mustUplink(t, old.j, old.config(t, c.url))
	syncWithin(t, u, time.Minute)

	repl := c.enroll(t, "T-01") // same ID, new key, new journal
	if repl.st.Epoch != 2 {
		t.Fatalf("replacement enrolled to write from epoch %d, want 2", repl.st.Epoch)
	}
	newOps := appendOps(t, repl.j, earns(5000, 60, 7))
	if newOps[0].Epoch != 2 || newOps[0].Seq != 1 {
		t.Fatalf("replacement's first op: %d/%d, want 2/1", newOps[0].Epoch, newOps[0].Seq)
	}
	u2 := mustUplink(t, repl.j, repl.config(t, c.url))
	syncWithin(t, u2, time.Minute)
	model := map[loyalty.CardHash]loyalty.Points{}
	for _, o := range append(oldOps, newOps...) {
		model[o.Card] += o.Points
	}
	c.checkBalances(t, model)
	if wm, _, err := c.ledger.Watermark(context.Background(), "T-01", 2); err != nil || wm != 60 {
		t.Errorf("cloud watermark of T-01 epoch 2: %d (%v), want 60", wm, err)
	}
}
