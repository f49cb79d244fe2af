package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Ledger transaction kinds, stored with every posting.
const (
	kindEarn    = 1
	kindRedeem  = 2
	kindReverse = 3
	kindAdjust  = 4
	kindReeval  = 5
	kindLink    = 6
	kindExpire  = 7
	kindClaim   = 8
)

// Parts of the ledger transactions an op makes: its own, and the
// re-evaluation adjustment of an earn. A transaction is (txid, part).
const (
	partMain   = 0
	partReeval = 1
	partClaim  = 2
)

// neverExpires is the expires_at of a lot from rules without expiry.
const neverExpires = math.MaxInt64

// lot is a credit of points that debits consume, soonest expiry first.
type lot struct {
	id           string // txid (16 bytes) and part
	owner        cloud.Owner
	amount       int64
	remaining    int64
	earnedAt     int64
	expiresAt    int64
	rulesVersion int64
	store        string
	dirty        bool // to be written
	fresh        bool // created by this transaction: inserted, not updated
	// brief: read by owner from the index lots_by_owner_no alone (id, owner_no,
	// expires_at, remaining), without a lookup of each lot's row; amount,
	// earnedAt, rulesVersion and store are unknown. Only fresh lots are
	// inserted, so only a restore needs more: the amount (fullAmount).
	brief bool
}

func lotID(txid loyalty.OpID, part uint8) string { return string(txid[:]) + string([]byte{part}) }

// owner is what a batch knows of one owner of points.
type owner struct {
	id            cloud.Owner
	no            int64 // its number, which its lots name (0 until known or given)
	exists        bool  // an owners row exists
	qualifying    int64 // lifetime earned, for tiers
	lastOverspend int64
	// avail and debt are the balances of the owner's two accounts as the
	// database holds them: read with the row, and read again by check
	// once the book's writes are in. debt (<= 0) also follows the book's
	// postings as it makes them, because credits repay debt first.
	avail, debt int64
	// soonest is the earliest expiry of the owner's open lots
	// (neverExpires without any) as check read it, when checked.
	soonest    int64
	checked    bool
	lots       []*lot
	lotsLoaded bool
	pending    []*lot // lots created before lots were loaded
	dirty      bool
}

// txn is one balanced ledger transaction under construction.
type txn struct {
	id    loyalty.OpID
	part  uint8
	kind  uint8
	accts []string
	amts  []int64
}

func (t *txn) add(account string, amount int64) {
	if amount == 0 {
		return
	}
	for i, a := range t.accts {
		if a == account {
			t.amts[i] += amount
			return
		}
	}
	t.accts = append(t.accts, account)
	t.amts = append(t.amts, amount)
}

type posting struct {
	txid    loyalty.OpID
	part    uint8
	kind    uint8
	account string
	amount  int64
}

type lotUse struct {
	txid   loyalty.OpID
	part   uint8
	lot    string
	amount int64
}

// book gathers everything one ledger transaction reads and writes.
type book struct {
	s   *Store
	tx  *dbtx
	now int64 // received, Unix micros
	// lapsedUntil is how far point expiry had run (Unix micros) when the
	// transaction began, for reversals (see lapsedOf).
	lapsedUntil int64

	owners   map[cloud.Owner]*owner
	byNo     map[int64]*owner // owners by number, those whose number is known
	lots     map[string]*lot
	moved    map[cloud.Owner]cloud.Owner // card owners linked to members in this batch
	postings []posting
	uses     []lotUse
	deltas   map[string]int64
	order    []string // accounts in first-touched order, for deterministic writes
	// balanceOnly lists the owners whose balances writeBalances moved
	// without the book having their rows (expiry): check covers them.
	balanceOnly []cloud.Owner

	// Set by applyOps for flush and the snapshots.
	rulesVersion uint32         // current rules version
	rules        *loyalty.Rules // current rules (nil when none published)
	cards        map[loyalty.CardHash]*card
	over         []overspend
	reversals    [][2]loyalty.OpID // target, reversing op
}

func newBook(s *Store, tx *dbtx, now int64) *book {
	return &book{s: s, tx: tx, now: now, owners: map[cloud.Owner]*owner{}, byNo: map[int64]*owner{}, lots: map[string]*lot{},
		moved: map[cloud.Owner]cloud.Owner{}, deltas: map[string]int64{}}
}

// commit checks that t balances and records its postings.
func (b *book) commit(t *txn) error {
	var sum int64
	for _, a := range t.amts {
		sum += a
	}
	if sum != 0 {
		b.s.log.Error("ledger transaction does not balance; rolling back", "txid", t.id.String(), "part", t.part, "sum", sum)
		return fmt.Errorf("%w: transaction %s/%d postings sum to %d, not 0", cloud.ErrInvariant, t.id, t.part, sum)
	}
	for i, a := range t.accts {
		if t.amts[i] == 0 {
			continue
		}
		b.postings = append(b.postings, posting{t.id, t.part, t.kind, a, t.amts[i]})
		if _, ok := b.deltas[a]; !ok {
			b.order = append(b.order, a)
		}
		b.deltas[a] += t.amts[i]
	}
	return nil
}

// owner returns an owner's state, reading it on first use.
func (b *book) owner(ctx context.Context, id cloud.Owner) (*owner, error) {
	if o, ok := b.owners[id]; ok {
		return o, nil
	}
	if err := b.loadOwners(ctx, []cloud.Owner{id}); err != nil {
		return nil, err
	}
	return b.owners[id], nil
}

// loadOwners reads the owners rows (with their balances) of ids not yet
// known; an owner without a row has nothing posted yet.
func (b *book) loadOwners(ctx context.Context, ids []cloud.Owner) error {
	var want []cloud.Owner
	for _, id := range ids {
		if _, ok := b.owners[id]; !ok {
			b.owners[id] = &owner{id: id}
			want = append(want, id)
		}
	}
	return chunks(want, b.s.inMax(), func(ids []cloud.Owner) error {
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = string(id)
		}
		rows, err := b.tx.queryIn(ctx, qOwners, args)
		if err != nil {
			return fmt.Errorf("read owners: %w", err)
		}
		return scanAll(rows, func(rows *sql.Rows) error {
			var id string
			var q, lo, avail, debt, no int64
			if err := rows.Scan(&id, &q, &lo, &avail, &debt, &no); err != nil {
				return fmt.Errorf("read owners: %w", err)
			}
			o := b.owners[cloud.Owner(id)]
			o.exists, o.qualifying, o.lastOverspend, o.avail, o.debt, o.no = true, q, lo, avail, debt, no
			b.byNo[no] = o
			return nil
		})
	})
}

// heldLots is the condition that selects the lots of held cards, as the
// index lots_by_owner_no names it: held cards have negative numbers.
const heldLots = `owner_no < 0`

// selectLots reads lots with their owners' IDs (see scanLot).
const selectLots = `SELECT l.id, o.id, l.amount, l.remaining, l.earned_at, l.expires_at, l.rules_version, l.store
	FROM lots l JOIN owners o ON o.no = l.owner_no`

func scanLot(rows *sql.Rows) (*lot, error) {
	var l lot
	var id []byte
	var o string
	if err := rows.Scan(&id, &o, &l.amount, &l.remaining, &l.earnedAt, &l.expiresAt, &l.rulesVersion, &l.store); err != nil {
		return nil, err
	}
	l.id, l.owner = string(id), cloud.Owner(o)
	return &l, nil
}

// loadLots reads the open lots of owners whose lots are not loaded yet.
func (b *book) loadLots(ctx context.Context, os []*owner) error {
	var want []*owner
	for _, o := range os {
		if !o.lotsLoaded {
			o.lotsLoaded = true
			want = append(want, o)
		}
	}
	// An owner without a row has no lots in the database.
	var nos []any
	for _, o := range want {
		if o.exists {
			nos = append(nos, o.no)
		}
	}
	err := chunks(nos, b.s.inMax(), func(nos []any) error {
		rows, err := b.tx.queryIn(ctx, qOpenLots, nos)
		if err != nil {
			return fmt.Errorf("read lots: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			l := &lot{brief: true}
			var id []byte
			var no int64
			if err := rows.Scan(&id, &no, &l.expiresAt, &l.remaining); err != nil {
				return fmt.Errorf("read lots: %w", err)
			}
			o := b.byNo[no]
			if o == nil {
				return fmt.Errorf("%w: read a lot of owner number %d, which no owner read has", cloud.ErrInvariant, no)
			}
			l.id, l.owner = string(id), o.id
			if have, ok := b.lots[l.id]; ok {
				l = have
			} else {
				b.lots[l.id] = l
			}
			o.lots = append(o.lots, l)
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	for _, o := range want {
		o.lots = append(o.lots, o.pending...)
		o.pending = nil
		sortLots(o.lots)
	}
	return nil
}

// sortLots orders lots soonest expiry first, then by ID (earliest op first).
func sortLots(ls []*lot) { slices.SortFunc(ls, compareLots) }

// compareLots orders two lots as debits consume them.
func compareLots(a, c *lot) int {
	if a.expiresAt != c.expiresAt {
		if a.expiresAt < c.expiresAt {
			return -1
		}
		return 1
	}
	return strings.Compare(a.id, c.id)
}

// lotByID returns a lot that may be closed (remaining 0), reading it if needed.
func (b *book) lotByID(ctx context.Context, id string) (*lot, error) {
	if l, ok := b.lots[id]; ok {
		return l, nil
	}
	rows, err := b.tx.QueryContext(ctx, b.s.q(selectLots+` WHERE l.id = ?`), []byte(id))
	if err != nil {
		return nil, fmt.Errorf("read lot: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read lot: %w", err)
		}
		return nil, fmt.Errorf("%w: a lot recorded as used is missing", cloud.ErrInvariant)
	}
	l, err := scanLot(rows)
	if err != nil {
		return nil, fmt.Errorf("read lot: %w", err)
	}
	if to, ok := b.moved[l.owner]; ok {
		l.owner = to
	}
	b.lots[id] = l
	return l, nil
}

// fullAmount reads the amount of a lot read in brief.
func (b *book) fullAmount(ctx context.Context, l *lot) error {
	rows, err := b.tx.query(ctx, qLotAmount, []byte(l.id))
	if err != nil {
		return fmt.Errorf("read lot amount: %w", err)
	}
	found := false
	err = scanAll(rows, func(rows *sql.Rows) error {
		found = true
		return rows.Scan(&l.amount)
	})
	if err != nil {
		return fmt.Errorf("read lot amount: %w", err)
	}
	if !found {
		return fmt.Errorf("%w: a lot read by its owner is missing", cloud.ErrInvariant)
	}
	l.brief = false
	return nil
}

// newLot records a lot for credited points.
func (b *book) newLot(o *owner, t *txn, amount, earnedAt, expiresAt int64, rulesVersion uint32, store string) {
	l := &lot{id: lotID(t.id, t.part), owner: o.id, amount: amount, remaining: amount, earnedAt: earnedAt,
		expiresAt: expiresAt, rulesVersion: int64(rulesVersion), store: store, dirty: true, fresh: true}
	b.lots[l.id] = l
	if !o.lotsLoaded {
		o.pending = append(o.pending, l)
		return
	}
	o.lots = append(o.lots, l)
	sortLots(o.lots)
}

// credit gives amount points to o, taken from the account from: debt is
// repaid first, the rest becomes available in a new lot.
func (b *book) credit(o *owner, t *txn, amount int64, from string, earnedAt, expiresAt int64, rulesVersion uint32, store string) {
	if amount <= 0 {
		return
	}
	o.dirty = true
	t.add(from, -amount)
	repay := min(amount, -o.debt)
	if repay > 0 {
		t.add(cloud.OwnerAccount(cloud.AccountDebt, o.id), repay)
		o.debt += repay
	}
	if rest := amount - repay; rest > 0 {
		t.add(cloud.OwnerAccount(cloud.AccountAvail, o.id), rest)
		b.newLot(o, t, rest, earnedAt, expiresAt, rulesVersion, store)
	}
}

// debit takes amount points from o into the account to, consuming lots
// (those in prefer first, then soonest expiry) and recording which. What
// the lots cannot cover is owed: it goes to o's debt, against the account
// shortfallTo. It returns the shortfall.
func (b *book) debit(ctx context.Context, o *owner, t *txn, amount int64, to, shortfallTo string, prefer ...string) (int64, error) {
	if amount <= 0 {
		return 0, nil
	}
	if err := b.loadLots(ctx, []*owner{o}); err != nil {
		return 0, err
	}
	o.dirty = true
	need := amount
	take := func(l *lot) {
		n := min(need, l.remaining)
		if n <= 0 {
			return
		}
		l.remaining -= n
		l.dirty = true
		need -= n
		b.uses = append(b.uses, lotUse{t.id, t.part, l.id, n})
	}
	for _, id := range prefer {
		if l, ok := b.lots[id]; ok && l.owner == o.id {
			take(l)
		}
	}
	for _, l := range o.lots {
		if need == 0 {
			break
		}
		take(l)
	}
	o.lots = slices.DeleteFunc(o.lots, func(l *lot) bool { return l.remaining == 0 })
	taken := amount - need
	t.add(cloud.OwnerAccount(cloud.AccountAvail, o.id), -taken)
	t.add(to, taken)
	if need > 0 {
		t.add(cloud.OwnerAccount(cloud.AccountDebt, o.id), -need)
		t.add(shortfallTo, need)
		o.debt -= need
	}
	return need, nil
}

// restore returns points a debit took from lots (a reversal) to o,
// against the account from. Like a credit, they repay what o owes first:
// otherwise undoing two ops would leave o with points and a debt, or not,
// depending on the order of the two reversals. The rest goes back to the
// lots it was taken from, so that it lapses when they do. The repaid
// points are those of the soonest-expiring lots, which a debit takes
// first: as if the reversal had come before what left the debt.
func (b *book) restore(ctx context.Context, o *owner, t *txn, uses []lotUse, from string) error {
	if err := b.loadLots(ctx, []*owner{o}); err != nil {
		return err
	}
	o.dirty = true
	type refill struct {
		lot    *lot
		amount int64
	}
	refills := make([]refill, 0, len(uses))
	var total int64
	for _, u := range uses {
		l, err := b.lotByID(ctx, u.lot)
		if err != nil {
			return err
		}
		if l.owner != o.id {
			return fmt.Errorf("%w: lot of %s restored to %s", cloud.ErrInvariant, l.owner, o.id)
		}
		refills = append(refills, refill{l, u.amount})
		total += u.amount
	}
	slices.SortFunc(refills, func(a, c refill) int { return compareLots(a.lot, c.lot) })
	t.add(from, -total)
	repay := min(total, -o.debt)
	if repay > 0 {
		t.add(cloud.OwnerAccount(cloud.AccountDebt, o.id), repay)
		o.debt += repay
	}
	t.add(cloud.OwnerAccount(cloud.AccountAvail, o.id), total-repay)
	for _, r := range refills {
		n := r.amount - min(r.amount, repay)
		repay -= r.amount - n
		if n == 0 {
			continue
		}
		l := r.lot
		if l.brief {
			if err := b.fullAmount(ctx, l); err != nil {
				return err
			}
		}
		if l.remaining == 0 {
			o.lots = append(o.lots, l)
		}
		l.remaining += n
		if l.remaining > l.amount {
			return fmt.Errorf("%w: lot restored beyond its amount", cloud.ErrInvariant)
		}
		l.dirty = true
		// A restore is recorded as a negative use, so that every lot's
		// remaining points are its amount minus its uses.
		b.uses = append(b.uses, lotUse{t.id, t.part, l.id, -n})
	}
	sortLots(o.lots)
	return nil
}

// link moves everything a card owner holds to a member: balances, lots
// (open and closed) and qualifying points. Points and debt brought
// together settle at once, as a credit or a restore repays debt before
// anything is available: otherwise the account would depend on whether a
// card's points came before or after its link, and points could lapse
// while the debt stayed. The settlement is part of the link's
// transaction (Check counts it as settled) and takes the soonest-expiring
// lots, recording their uses, so a reversal of the earn whose lot it took
// finds the lot spent, not lapsed.
func (b *book) link(ctx context.Context, from, to *owner, t *txn) error {
	if err := b.loadLots(ctx, []*owner{from, to}); err != nil {
		return err
	}
	b.moved[from.id] = to.id
	var avail int64
	for _, l := range from.lots {
		avail += l.remaining
	}
	for _, l := range b.lots {
		if l.owner == from.id {
			l.owner = to.id
			l.dirty = true
		}
	}
	to.lots = append(to.lots, from.lots...)
	sortLots(to.lots)
	from.lots = nil
	t.add(cloud.OwnerAccount(cloud.AccountAvail, from.id), -avail)
	t.add(cloud.OwnerAccount(cloud.AccountAvail, to.id), avail)
	t.add(cloud.OwnerAccount(cloud.AccountDebt, from.id), -from.debt)
	t.add(cloud.OwnerAccount(cloud.AccountDebt, to.id), from.debt)
	to.debt += from.debt
	from.debt = 0
	to.qualifying += from.qualifying
	from.qualifying = 0
	to.lastOverspend = max(to.lastOverspend, from.lastOverspend)
	from.dirty, to.dirty = true, true
	var held int64
	for _, l := range to.lots {
		held += l.remaining
	}
	if repay := min(held, -to.debt); repay > 0 {
		debt := cloud.OwnerAccount(cloud.AccountDebt, to.id)
		if _, err := b.debit(ctx, to, t, repay, debt, debt); err != nil {
			return err
		}
		to.debt += repay
	}
	return nil
}
