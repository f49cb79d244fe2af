package storetest

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// The runs of the independent ledger model (ledger_model.go) against a
// ledger.

// modelSeeds returns the seeds TILLPOINT_MODEL_SEEDS names ("7", "1-200",
// "3,9"), by default a few.
func modelSeeds(t *testing.T) []uint64 {
	v := os.Getenv("TILLPOINT_MODEL_SEEDS")
	if v == "" {
		return []uint64{1, 2, 3, 4}
	}
	var seeds []uint64
	for _, part := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
		if err != nil {
			t.Fatalf("TILLPOINT_MODEL_SEEDS=%q: %v", v, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 64); err != nil {
				t.Fatalf("TILLPOINT_MODEL_SEEDS=%q: %v", v, err)
			}
		}
		for s := a; s <= b; s++ {
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// testLedgerModel runs the episodes of modelSeeds against one ledger.
func testLedgerModel(t *testing.T, l cloud.Ledger) {
	m := newLedgerModel()
	clock := Start()
	batches := 50
	if testing.Short() || raceEnabled {
		batches = 20
	}
	for _, seed := range modelSeeds(t) {
		m.log = nil
		clock = runModelEpisode(t, l, m, seed, clock, batches)
		t.Logf("seed %d: cases reached so far: %v", seed, m.seen)
		if t.Failed() {
			if os.Getenv("TILLPOINT_MODEL_TRACE") != "" {
				t.Logf("seed %d, ops so far:\n%s", seed, strings.Join(m.log, "\n"))
			}
			t.Fatalf("seed %d disagrees with the model (TILLPOINT_MODEL_SEEDS=%d TILLPOINT_MODEL_TRACE=1 shows its ops)", seed, seed)
		}
	}
}

func runModelEpisode(t *testing.T, l cloud.Ledger, m *ledgerModel, seed uint64, clock time.Time, batches int) time.Time {
	rnd := rand.New(rand.NewPCG(seed, 0x5eed))
	tills := []*Till{
		NewTill(t, l, fmt.Sprintf("m%d-a", seed), "s1"),
		NewTill(t, l, fmt.Sprintf("m%d-b", seed), "s1"),
		NewTill(t, l, fmt.Sprintf("m%d-c", seed), "s2"),
	}
	var cards []loyalty.CardHash
	for i := range 6 {
		cards = append(cards, Card(10000+int(seed)*10+i))
	}
	cardNo := func(c loyalty.CardHash) int { return slices.Index(cards, c) }
	members := []loyalty.MemberID{loyalty.MemberID(fmt.Sprintf("m%d-x", seed)), loyalty.MemberID(fmt.Sprintf("m%d-y", seed)), loyalty.MemberID(fmt.Sprintf("m%d-z", seed))}
	var history []loyalty.Op            // every op sent, reversal targets
	sentBy := map[string][]loyalty.Op{} // ops each till sent in earlier batches, to send again
	describe := func(op loyalty.Op) string {
		switch op.Kind {
		case loyalty.OpEarn:
			return fmt.Sprintf("earn card%d %d cents (%d base points)", cardNo(op.Card), op.Basket.Lines[0].Amount, op.Points)
		case loyalty.OpRedeem:
			return fmt.Sprintf("redeem card%d %d (offline %v)", cardNo(op.Card), -op.Points, op.Offline)
		case loyalty.OpEnroll:
			return fmt.Sprintf("enroll card%d to %s", cardNo(op.Card), op.Member)
		case loyalty.OpReverse:
			return fmt.Sprintf("reverse card%d %s", cardNo(op.Card), op.Reverses.String()[:13])
		}
		return op.Kind.String()
	}
	for step := range batches {
		switch r := rnd.IntN(100); {
		case r < 60:
			clock = clock.Add(time.Duration(1+rnd.IntN(600)) * time.Second)
		case r < 85:
			clock = clock.Add(time.Duration(1+rnd.IntN(20)) * 24 * time.Hour)
		default:
			clock = clock.AddDate(0, 1+rnd.IntN(4), 0)
		}
		if rnd.IntN(6) == 0 { // an expiry run at a time of its own, before or after the clock
			at := clock.Add(time.Duration(rnd.IntN(6*24*3600)-3*24*3600) * time.Second)
			m.runExpire(t, l, at)
		}
		tl := tills[rnd.IntN(len(tills))]
		if tl.Now.Before(clock) {
			tl.Now = clock
		}
		var ops []loyalty.Op
		inBatch := map[loyalty.OpID]bool{}
		for range 1 + rnd.IntN(8) {
			c := cards[rnd.IntN(len(cards))]
			var op loyalty.Op
			switch k := rnd.IntN(100); {
			case k < 32:
				cents := int64(100 + rnd.IntN(3000))
				op = tl.Earn(c, cents, loyalty.Points(cents/100))
			case k < 55:
				op = tl.Redeem(c, loyalty.Points(1+rnd.IntN(50)), rnd.IntN(10) < 7)
			case k < 65:
				op = tl.Enroll(c, members[rnd.IntN(len(members))])
			case k < 85:
				if rnd.IntN(20) == 0 || len(history) == 0 { // a target the ledger never saw
					op = tl.Reverse(tl.Earn(c, 500, 5))
				} else {
					op = tl.Reverse(history[rnd.IntN(len(history))])
				}
			default: // one of this till's ops of an earlier batch, again
				old := sentBy[tl.ID]
				if len(old) == 0 {
					continue
				}
				op = old[rnd.IntN(len(old))]
				if inBatch[op.ID] {
					continue
				}
			}
			inBatch[op.ID] = true
			ops = append(ops, op)
		}
		if len(ops) == 0 {
			continue
		}
		b := tl.Seal(ops...)
		if rnd.IntN(6) == 0 { // an expiry run between the batch's receive time and its apply
			m.seen["expiry run after the batch's receive time"]++
			m.runExpire(t, l, b.ReceivedAt.Add(time.Duration(1+rnd.IntN(10*24*3600))*time.Second))
		}
		var want []cloud.OpResult
		for _, op := range b.Ops {
			r := m.apply(op, tl.Store, b.ReceivedAt)
			m.logf("  %s seq %d %s %s: %s %q %d", tl.ID, op.Seq, op.ID.String()[:13], describe(op), r.Status, r.Reason, r.Points)
			want = append(want, r)
		}
		m.logf("step %d: batch of %s received %s applied", step, tl.ID, b.ReceivedAt.Format(time.DateTime))
		a, err := l.Apply(ctx, b)
		if err != nil {
			t.Fatalf("seed %d step %d: apply: %v", seed, step, err)
		}
		compareResults(t, fmt.Sprintf("seed %d step %d", seed, step), a.Results, want)
		if rnd.IntN(5) == 0 { // the same batch again: a replay
			m.logf("step %d: the batch again", step)
			again, err := l.Apply(ctx, b)
			if err != nil {
				t.Fatalf("seed %d step %d: replay: %v", seed, step, err)
			}
			if !again.Replay {
				t.Errorf("seed %d step %d: the batch sent again was not a replay", seed, step)
			}
			compareResults(t, fmt.Sprintf("seed %d step %d replay", seed, step), again.Results, want)
		}
		for _, op := range b.Ops {
			if !slices.ContainsFunc(history, func(h loyalty.Op) bool { return h.ID == op.ID }) {
				history = append(history, op)
				sentBy[tl.ID] = append(sentBy[tl.ID], op)
			}
		}
		m.compare(t, l, fmt.Sprintf("seed %d step %d", seed, step), cards, clock)
		if t.Failed() {
			return clock
		}
	}
	return clock
}

func (m *ledgerModel) runExpire(t *testing.T, l cloud.Ledger, at time.Time) {
	t.Helper()
	want := m.expire(at)
	m.logf("expire at %s: %d points", at.Format(time.DateTime), want)
	res, err := l.Expire(ctx, at)
	if err != nil {
		t.Fatalf("expire at %s: %v", at, err)
	}
	if res.Skipped || int64(res.Points) != want {
		t.Errorf("expire at %s: lapsed %d points (skipped %v), model says %d", at, res.Points, res.Skipped, want)
	}
}

func compareResults(t *testing.T, where string, got, want []cloud.OpResult) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d results, want %d", where, len(got), len(want))
		return
	}
	const mask = cloud.FlagHeld | cloud.FlagOverspend | cloud.FlagReevaluated
	for i := range got {
		g, w := got[i], want[i]
		gf, wf := g.Flags&mask, w.Flags&mask
		if g.Status != cloud.StatusApplied {
			gf = 0
		}
		if g.ID != w.ID || g.Status != w.Status || g.Reason != w.Reason || g.Points != w.Points || gf != wf {
			t.Errorf("%s: op seq %d: got %s %q %d points flags %v, model says %s %q %d points flags %v",
				where, g.Seq, g.Status, g.Reason, g.Points, gf.Names(), w.Status, w.Reason, w.Points, wf.Names())
		}
	}
}

// compare checks the ledger against the model: cards, program accounts, Check.
func (m *ledgerModel) compare(t *testing.T, l cloud.Ledger, where string, cards []loyalty.CardHash, now time.Time) {
	t.Helper()
	for i, c := range cards {
		s, err := l.Snapshot(ctx, c, "s1", now)
		if err != nil {
			t.Fatalf("%s: snapshot: %v", where, err)
		}
		o := m.owner(m.ownerOf(c))
		var al loyalty.Points
		if s.Allowance != nil {
			al = s.Allowance.Points
		}
		if s.Member != m.members[c] || int64(s.Balance) != o.avail() || int64(s.Debt) != o.debt || s.Tier != tierOf(o.qualifying) || al != m.allowance(c, now) {
			t.Errorf("%s: card%d: got member %q balance %d debt %d tier %q allowance %d, model says %q %d %d %q %d", where, i,
				s.Member, s.Balance, s.Debt, s.Tier, al, m.members[c], o.avail(), o.debt, tierOf(o.qualifying), m.allowance(c, now))
		}
	}
	if db, ok := l.(interface{ DB() *sql.DB }); ok {
		got := map[string]int64{}
		rows, err := db.DB().QueryContext(ctx, `SELECT id, balance FROM accounts`)
		if err != nil {
			t.Fatalf("%s: read accounts: %v", where, err)
		}
		for rows.Next() {
			var id string
			var bal int64
			if err := rows.Scan(&id, &bal); err != nil {
				t.Fatalf("%s: read accounts: %v", where, err)
			}
			switch name, _, _ := strings.Cut(id, "|"); name {
			case cloud.AccountIssued, cloud.AccountRedeemed, cloud.AccountAdjust, cloud.AccountExpired:
				got[name] += bal
			case cloud.AccountShortfall:
				got[id] += bal
			}
		}
		rows.Close()
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			seen := map[string]bool{}
			for _, mp := range []map[string]int64{got, m.acct} {
				for k := range mp {
					if !seen[k] && !yield(k) {
						return
					}
					seen[k] = true
				}
			}
		}) {
			if got[k] != m.acct[k] {
				t.Errorf("%s: program account %s: got %d, model says %d", where, k, got[k], m.acct[k])
			}
		}
	}
	rep, err := l.Check(ctx)
	if err != nil || len(rep.Problems) > 0 {
		t.Errorf("%s: check: %v %q", where, err, rep.Problems)
	}
	var liability, debt int64
	for _, o := range m.owners {
		liability += o.avail()
		debt += o.debt
	}
	got := [7]loyalty.Points{rep.Liability, rep.Debt, rep.Earned, rep.Redeemed, rep.Expired, rep.Adjusted, rep.Settled}
	want := [7]loyalty.Points{loyalty.Points(liability), loyalty.Points(debt), loyalty.Points(m.rep.earned), loyalty.Points(m.rep.redeemed),
		loyalty.Points(m.rep.expired), loyalty.Points(m.rep.adjusted), loyalty.Points(m.rep.settled)}
	if got != want {
		t.Errorf("%s: check reports liability, debt, earned, redeemed, expired, adjusted, settled %v, model says %v", where, got, want)
	}
}

// testReverseOfLapsedEarnTakesItsQualifyingPoints: a reversed earn takes
// its points out of the member's qualifying points (tiers), also when all
// of them had lapsed and the reversal takes nothing from the balance.
func testReverseOfLapsedEarnTakesItsQualifyingPoints(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	earn := tl.Earn(c, 10000, 100) // 100 points: Silver
	tl.Send(t, l, tl.Enroll(c, "alice"), earn)
	if s := snap(t, l, c); s.Tier != "Silver" {
		t.Fatalf("after the earn: tier %q, want Silver", s.Tier)
	}
	if _, err := l.Expire(ctx, earn.WallTime.AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	tl.Now = tl.Now.AddDate(1, 0, 1)
	a := tl.Send(t, l, tl.Reverse(earn))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 0)
	if s := snap(t, l, c); s.Tier != "" || s.Balance != 0 || s.Debt != 0 {
		t.Errorf("after the reversal: tier %q balance %d debt %d, want no tier and nothing", s.Tier, s.Balance, s.Debt)
	}
}
