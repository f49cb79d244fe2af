package storetest

import (
	"cmp"
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

// This file holds a second randomized test against an independent model,
// beside testModel: its op mix covers held cards and links (a card earning
// before its enroll, a member in debt linking a card with points and the
// reverse), offline overspends and the debt they leave, reversals of
// earns and redeems (their lots spent by a later redeem or settled by a
// link, or lapsed), expiry runs at random times (between a batch's receive
// time and its apply too), refused ops, and resends: of a whole batch (a
// replay) and of single ops in a later batch (duplicates, refused again).
//
// The model is written from the ledger's documented rules (cloud/doc.go,
// cloud/ledger.go, cloud/risk.go, the comments of sqlstore's book): points
// live in lots that expire 12 months after they were earned (the op's wall
// time, never later than the batch's receive time); a debit takes the
// soonest-expiring lots first (ties by lot ID: the op's ID, then its part);
// what the lots cannot cover is owed as debt; a credit, a restore (a
// reversed redeem) and a link repay debt before anything is available; a
// reversed earn takes back what it posted except what of its lots lapsed;
// Expire lapses every open lot due at or before its time.
//
// After every batch it compares every card's balance, debt, tier and
// offline allowance, the sums of the program accounts, Check's report and
// every op's result.
//
// TILLPOINT_MODEL_SEEDS picks the seeds ("7", "1-200" or "3,9"); by default
// a few run. The seeds of one run share one ledger and one model, one
// after the other: to reproduce a failure, run its seed alone.

// mLot is a credit of points as the model keeps it.
type mLot struct {
	id        string // lotID: the op's ID and its part
	owner     cloud.Owner
	expires   int64 // Unix micros
	remaining int64
	lapsed    int64 // what expiry runs took from it, ever
}

// mOwner is a member, or a card no member holds yet.
type mOwner struct {
	debt, qualifying int64
	lastOverspend    int64 // Unix micros, 0 when none
	lots             []*mLot
}

func (o *mOwner) avail() int64 {
	var n int64
	for _, l := range o.lots {
		n += l.remaining
	}
	return n
}

// open returns the owner's lots with points left, as a debit takes them.
func (o *mOwner) open() []*mLot {
	var ls []*mLot
	for _, l := range o.lots {
		if l.remaining > 0 {
			ls = append(ls, l)
		}
	}
	slices.SortFunc(ls, func(a, b *mLot) int { return cmp.Or(cmp.Compare(a.expires, b.expires), strings.Compare(a.id, b.id)) })
	return ls
}

// mOp is what the model knows of an op it decided.
type mOp struct {
	op       loyalty.Op
	status   cloud.Status
	reason   string
	posted   int64
	store    string
	uses     map[string]int64 // a redeem's points by the lot they came from
	reversed bool
}

type mReport struct{ earned, redeemed, expired, adjusted, settled int64 }

type ledgerModel struct {
	owners  map[cloud.Owner]*mOwner
	members map[loyalty.CardHash]loyalty.MemberID
	cards   map[loyalty.MemberID]int // cards linked to each member
	lots    map[string]*mLot
	ops     map[loyalty.OpID]*mOp // applied or refused, by ID
	acct    map[string]int64      // program accounts by name ("shortfall|s1" per store)
	rep     mReport
	log     []string
	// seen counts the cases the ops reached, to tell how well a run covers them.
	seen map[string]int
}

func newLedgerModel() *ledgerModel {
	return &ledgerModel{owners: map[cloud.Owner]*mOwner{}, members: map[loyalty.CardHash]loyalty.MemberID{},
		cards: map[loyalty.MemberID]int{}, lots: map[string]*mLot{}, ops: map[loyalty.OpID]*mOp{}, acct: map[string]int64{}, seen: map[string]int{}}
}

func (m *ledgerModel) logf(format string, args ...any) {
	m.log = append(m.log, fmt.Sprintf(format, args...))
}

func (m *ledgerModel) ownerOf(c loyalty.CardHash) cloud.Owner {
	if mem := m.members[c]; mem != "" {
		return cloud.MemberOwner(mem)
	}
	return cloud.CardOwner(c)
}

func (m *ledgerModel) owner(id cloud.Owner) *mOwner {
	o := m.owners[id]
	if o == nil {
		o = &mOwner{}
		m.owners[id] = o
	}
	return o
}

// credit gives amount to o from the program account from: debt first, the
// rest in a new lot. It returns what became available.
func (m *ledgerModel) credit(oid cloud.Owner, amount int64, from, lot string, expires int64) int64 {
	o := m.owner(oid)
	m.acct[from] -= amount
	repay := min(amount, o.debt)
	o.debt -= repay
	rest := amount - repay
	if rest > 0 {
		l := &mLot{id: lot, owner: oid, expires: expires, remaining: rest}
		o.lots = append(o.lots, l)
		m.lots[lot] = l
	}
	return rest
}

// debit takes amount from o's lots (those in prefer first, then soonest
// expiry first); the rest is owed. It returns the uses and the shortfall.
func (m *ledgerModel) debit(oid cloud.Owner, amount int64, prefer ...string) (map[string]int64, int64) {
	o := m.owner(oid)
	uses := map[string]int64{}
	need := amount
	take := func(l *mLot) {
		n := min(need, l.remaining)
		if n > 0 {
			l.remaining -= n
			need -= n
			uses[l.id] += n
		}
	}
	for _, id := range prefer {
		if l := m.lots[id]; l != nil && l.owner == oid {
			take(l)
		}
	}
	for _, l := range o.open() {
		take(l)
	}
	o.debt += need
	return uses, need
}

// expire lapses every open lot due at or before at.
func (m *ledgerModel) expire(at time.Time) int64 {
	var total int64
	for _, l := range m.lots {
		if l.remaining > 0 && l.expires <= at.UnixMicro() {
			total += l.remaining
			l.lapsed += l.remaining
			l.remaining = 0
		}
	}
	m.acct[cloud.AccountExpired] += total
	m.rep.expired += total
	if total > 0 {
		m.seen["expiry lapses"]++
	}
	return total
}

func tierOf(q int64) string {
	switch {
	case q >= 1000:
		return "Gold"
	case q >= 100:
		return "Silver"
	}
	return ""
}

// expiry is when a credit made by op in a batch received at rcv expires.
func expiry(op loyalty.Op, rcv time.Time) int64 {
	t := op.WallTime
	if t.After(rcv) {
		t = rcv
	}
	return t.UTC().AddDate(0, 12, 0).UnixMicro()
}

// apply decides op of a batch received at rcv from a terminal of store.
func (m *ledgerModel) apply(op loyalty.Op, store string, rcv time.Time) cloud.OpResult {
	res := cloud.OpResult{ID: op.ID, Seq: op.Seq}
	if prev := m.ops[op.ID]; prev != nil {
		if prev.status == cloud.StatusRejected {
			res.Status, res.Reason = cloud.StatusRejected, prev.reason
		} else {
			res.Status, res.Points = cloud.StatusDuplicate, loyalty.Points(prev.posted)
		}
		return res
	}
	mo := &mOp{op: op, status: cloud.StatusApplied, store: store}
	refuse := func(reason string) cloud.OpResult {
		mo.status, mo.reason = cloud.StatusRejected, reason
		m.ops[op.ID] = mo
		res.Status, res.Reason = mo.status, reason
		return res
	}
	main, reeval := mLotID(op.ID, 0), mLotID(op.ID, 1)
	switch op.Kind {
	case loyalty.OpEarn:
		oid := m.ownerOf(op.Card)
		o := m.owner(oid)
		if !oid.IsMember() {
			res.Flags |= cloud.FlagHeld
		}
		exp := expiry(op, rcv)
		base := int64(op.Points)
		m.rep.earned += m.credit(oid, base, cloud.AccountIssued, main, exp)
		want := earnFor(op.Basket.Lines[0].Amount, o.qualifying)
		if delta := want - base; delta > 0 {
			res.Flags |= cloud.FlagReevaluated
			m.rep.adjusted += m.credit(oid, delta, cloud.AccountAdjust, reeval, exp)
		}
		mo.posted = want
		o.qualifying += want
	case loyalty.OpRedeem:
		oid := m.ownerOf(op.Card)
		if !oid.IsMember() {
			res.Flags |= cloud.FlagHeld
		}
		p := -int64(op.Points)
		uses, short := m.debit(oid, p)
		m.acct[cloud.AccountRedeemed] += p - short
		m.rep.redeemed += p - short
		if short > 0 {
			m.seen["overspend"]++
			if !oid.IsMember() {
				m.seen["held overspend"]++
			}
			res.Flags |= cloud.FlagOverspend
			m.acct[cloud.Account(cloud.AccountShortfall, store)] += short
			m.owner(oid).lastOverspend = rcv.UnixMicro()
		}
		mo.uses, mo.posted = uses, -p
	case loyalty.OpEnroll:
		switch have := m.members[op.Card]; {
		case have == op.Member:
		case have != "":
			return refuse(cloud.ReasonCardLinked)
		default:
			m.seen["link"]++
			m.link(op.Card, op.Member)
		}
	case loyalty.OpReverse:
		target := m.ops[op.Reverses]
		switch {
		case target == nil || target.status != cloud.StatusApplied:
			return refuse(cloud.ReasonUnknownTarget)
		case target.reversed:
			return refuse(cloud.ReasonAlreadyReversed)
		case target.op.Kind == loyalty.OpEnroll || target.op.Kind == loyalty.OpReverse:
			return refuse(cloud.ReasonNotReversible)
		}
		target.reversed = true
		oid := m.ownerOf(target.op.Card)
		o := m.owner(oid)
		switch target.op.Kind {
		case loyalty.OpRedeem:
			var used int64
			for _, n := range target.uses {
				used += n
			}
			m.seen["reverse redeem"]++
			if o.debt > 0 {
				m.seen["reverse redeem with debt"]++
			}
			if short := -target.posted - used; short > 0 {
				m.seen["reverse overspend"]++
				m.rep.adjusted += m.credit(oid, short, cloud.Account(cloud.AccountShortfall, target.store), main, expiry(op, rcv))
			}
			m.rep.adjusted += m.restore(oid, target.uses)
			mo.posted = -target.posted
		case loyalty.OpEarn:
			o.qualifying = max(0, o.qualifying-target.posted)
			tl := []string{mLotID(target.op.ID, 0), mLotID(target.op.ID, 1)}
			var lapsed int64
			for _, id := range tl {
				if l := m.lots[id]; l != nil {
					lapsed += l.lapsed
				}
			}
			lapsed = min(lapsed, target.posted)
			m.seen["reverse earn"]++
			switch {
			case lapsed == target.posted:
				m.seen["reverse earn, all lapsed"]++
			case lapsed > 0:
				m.seen["reverse earn, some lapsed"]++
			}
			m.acct[cloud.AccountExpired] -= lapsed
			m.acct[cloud.AccountIssued] += target.posted
			uses, short := m.debit(oid, target.posted-lapsed, tl...)
			for id, n := range uses {
				m.rep.adjusted -= n
				if !slices.Contains(tl, id) {
					m.seen["reverse earn takes from other lots"]++
				}
			}
			if short > 0 {
				m.seen["reverse earn leaves debt"]++
			}
			mo.posted = -(target.posted - lapsed)
		}
	}
	m.ops[op.ID] = mo
	res.Status, res.Points = cloud.StatusApplied, loyalty.Points(mo.posted)
	return res
}

// restore gives back what a redeem took from lots: debt first (the
// soonest-expiring lots' share), the rest to the lots. It returns what
// became available.
func (m *ledgerModel) restore(oid cloud.Owner, uses map[string]int64) int64 {
	o := m.owner(oid)
	var total int64
	var ls []*mLot
	for id, n := range uses {
		total += n
		ls = append(ls, m.lots[id])
	}
	slices.SortFunc(ls, func(a, b *mLot) int { return cmp.Or(cmp.Compare(a.expires, b.expires), strings.Compare(a.id, b.id)) })
	m.acct[cloud.AccountRedeemed] -= total
	repay := min(total, o.debt)
	if len(uses) > 1 {
		m.seen["restore to several lots"]++
	}
	o.debt -= repay
	avail := total - repay
	for _, l := range ls {
		n := uses[l.id]
		r := min(n, repay)
		repay -= r
		l.remaining += n - r
	}
	return avail
}

// link moves a held card's points, debt and qualifying points to member,
// then settles the points and debt brought together.
func (m *ledgerModel) link(c loyalty.CardHash, member loyalty.MemberID) {
	fid, tid := cloud.CardOwner(c), cloud.MemberOwner(member)
	from, to := m.owner(fid), m.owner(tid)
	for _, l := range from.lots {
		l.owner = tid
	}
	to.lots = append(to.lots, from.lots...)
	from.lots = nil
	to.debt += from.debt
	to.qualifying += from.qualifying
	to.lastOverspend = max(to.lastOverspend, from.lastOverspend)
	from.debt, from.qualifying = 0, 0
	m.members[c] = member
	m.cards[member]++
	if repay := min(to.avail(), to.debt); repay > 0 {
		m.seen["link settles"]++
		m.debit(tid, repay) // within the balance: nothing owed
		to.debt -= repay
		m.rep.settled += repay
	}
}

// mLotID names the lot of an op's part (0: its own, 1: its re-evaluation).
func mLotID(id loyalty.OpID, part byte) string { return string(id[:]) + string([]byte{part}) }

// allowance is a card's offline allowance under the default policy.
func (m *ledgerModel) allowance(c loyalty.CardHash, now time.Time) loyalty.Points {
	mem := m.members[c]
	o := m.owner(m.ownerOf(c))
	bal := o.avail()
	if mem == "" || o.debt > 0 || bal <= 0 {
		return 0
	}
	if o.lastOverspend != 0 && now.Sub(time.UnixMicro(o.lastOverspend)) < 30*24*time.Hour {
		return 0
	}
	var lapsing int64
	for _, l := range o.lots {
		if l.remaining > 0 && l.expires < now.Add(24*time.Hour).UnixMicro() {
			lapsing += l.remaining
		}
	}
	pts := min(max(bal-lapsing, 0)*50/100, 2000)
	return loyalty.Points(pts / int64(max(m.cards[mem], 1)))
}

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
