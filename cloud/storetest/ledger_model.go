package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// This file holds the model of a second randomized test (its runs are in
// ledger_model_tests.go) against an independent model,
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
