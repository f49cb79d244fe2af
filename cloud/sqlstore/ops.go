package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// opRow is one op of a batch and what the ledger made of it.
type opRow struct {
	op     *loyalty.Op
	status cloud.Status
	reason string
	owner  cloud.Owner
	posted int64
	flags  cloud.Flags
	digest []byte
	// invalid: the op breaks the rules of its kind. It is rejected, and
	// none of its fields reaches a query (PostgreSQL, for one, would fail
	// the whole batch on a NUL in a text).
	invalid bool
}

func (r *opRow) result() cloud.OpResult {
	return cloud.OpResult{ID: r.op.ID, Seq: r.op.Seq, Status: r.status, Reason: r.reason, Points: loyalty.Points(r.posted), Flags: r.flags}
}

// appliedOp is what a later op (a duplicate, a reverse) needs of an applied op.
type appliedOp struct {
	id     loyalty.OpID
	kind   loyalty.OpKind
	card   loyalty.CardHash
	owner  cloud.Owner
	posted int64
	store  string // the store of the terminal that sent it (whose shortfall account a redeem used)
	digest []byte
}

// refusal is what a later op with the same ID needs of a refused op.
type refusal struct {
	reason string
	digest []byte
}

// card is a card the batch reads or touches.
type card struct {
	member loyalty.MemberID
	isNew  bool
	dirty  bool
	seen   bool // known to have been seen at the batch's store
	// used: an op of the batch that names it was applied (or was a
	// duplicate), so it is recorded among the store's cards. A card read
	// for an op that is then refused is not: a refused op changes nothing.
	used bool
}

// digest identifies an op's content wherever it sits in a journal: the
// canonical encoding with epoch and sequence cleared.
func digest(op *loyalty.Op) []byte {
	c := *op
	c.Epoch, c.Seq = 0, 0
	sum := sha256.Sum256(c.AppendCanonical(nil))
	return sum[:]
}

// opState is the batch-wide context of applyOps.
type opState struct {
	bt       *cloud.Batch
	store    string
	applied  map[loyalty.OpID]*appliedOp
	refused  map[loyalty.OpID][]refusal // ops refused before, never applied since
	reversed map[loyalty.OpID]bool
	cards    map[loyalty.CardHash]*card
	issued   string
	redeemed string
	adjust   string
	current  *loyalty.Rules // current rules, for expiry of lots without rules of their own
	over     []overspend
	// rules holds each version an op named, nil for one never published:
	// the Store caches only published rules, and a batch of ops naming an
	// unknown version would otherwise read the rules table once per op.
	rules map[uint32]*loyalty.Rules
}

// rulesOf returns the rules of version v, or nil when none were published.
func (st *opState) rulesOf(ctx context.Context, b *book, v uint32) (*loyalty.Rules, error) {
	if r, ok := st.rules[v]; ok {
		return r, nil
	}
	r, err := b.s.loadRules(ctx, b.tx, v)
	if errors.Is(err, cloud.ErrNotFound) {
		r, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if st.rules == nil {
		st.rules = map[uint32]*loyalty.Rules{}
	}
	st.rules[v] = r
	return r, nil
}

type overspend struct {
	op        *loyalty.Op
	owner     cloud.Owner
	shortfall int64
}

// applyOps decides every op of a batch, building the postings in b.
func (b *book) applyOps(ctx context.Context, bt *cloud.Batch, store string) ([]*opRow, error) {
	st := &opState{bt: bt, store: store,
		issued:   cloud.ProgramAccount(cloud.AccountIssued, bt.Terminal),
		redeemed: cloud.ProgramAccount(cloud.AccountRedeemed, bt.Terminal),
		adjust:   cloud.ProgramAccount(cloud.AccountAdjust, bt.Terminal),
	}
	rows := make([]*opRow, len(bt.Ops))
	var ids, targets []loyalty.OpID
	var cardHashes []loyalty.CardHash
	for i := range bt.Ops {
		op := &bt.Ops[i]
		rows[i] = &opRow{op: op, digest: digest(op), invalid: op.Validate() != nil}
		if rows[i].invalid {
			continue
		}
		ids = append(ids, op.ID)
		if !op.Reverses.IsZero() {
			ids = append(ids, op.Reverses)
			targets = append(targets, op.Reverses)
		}
		if !op.Card.IsZero() {
			cardHashes = append(cardHashes, op.Card)
		}
	}
	var err error
	if st.applied, st.refused, err = b.loadSeenOps(ctx, ids); err != nil {
		return nil, err
	}
	if st.reversed, err = b.loadReversed(ctx, targets); err != nil {
		return nil, err
	}
	for _, id := range targets {
		if a := st.applied[id]; a != nil && !a.card.IsZero() {
			cardHashes = append(cardHashes, a.card)
		}
	}
	if st.cards, err = b.loadCards(ctx, cardHashes); err != nil {
		return nil, err
	}
	if err := b.loadSeen(ctx, st.cards, store); err != nil {
		return nil, err
	}
	if b.rulesVersion > 0 { // read with the terminal (Apply)
		if st.current, err = b.s.loadRules(ctx, b.tx, b.rulesVersion); err != nil {
			return nil, err
		}
	}

	// Read up front the owners the ops touch (one query, not one per op),
	// and the open lots of those a debit may take from.
	var owners, debited []cloud.Owner
	// The batch's own ops that a reversal in it targets: their owners'
	// lots are read now too, not by a statement each when the reversal runs.
	targeted := make(map[loyalty.OpID]*loyalty.Op, len(targets))
	for _, id := range targets {
		targeted[id] = nil
	}
	for i := range bt.Ops {
		if _, ok := targeted[bt.Ops[i].ID]; ok && !rows[i].invalid {
			targeted[bt.Ops[i].ID] = &bt.Ops[i]
		}
	}
	for i, r := range rows {
		if r.invalid {
			continue
		}
		op := &bt.Ops[i]
		o := st.ownerOf(op.Card, op.Member)
		switch op.Kind {
		case loyalty.OpEnroll:
			// A link reads the lots of the card and of the member.
			if !op.Card.IsZero() {
				debited = append(debited, cloud.CardOwner(op.Card), cloud.MemberOwner(enrolledMember(op)))
			} else if op.Member != "" {
				owners = append(owners, cloud.MemberOwner(op.Member))
			}
		case loyalty.OpRedeem:
			debited = append(debited, o)
		case loyalty.OpAdjust:
			if op.Points < 0 {
				debited = append(debited, o)
			}
		case loyalty.OpReverse:
			var to cloud.Owner
			if a := st.applied[op.Reverses]; a != nil {
				to = a.owner
				if !a.card.IsZero() {
					to = st.ownerOf(a.card, "")
				}
			} else if t := targeted[op.Reverses]; t != nil {
				to = st.ownerOf(t.Card, t.Member)
			}
			if to != "" {
				owners = append(owners, to)
				debited = append(debited, to)
			}
		}
		if o != "" {
			owners = append(owners, o)
		}
	}
	if err := b.loadOwners(ctx, append(owners, debited...)); err != nil {
		return nil, err
	}
	var lotOwners []*owner
	for _, o := range debited {
		if o != "" {
			lotOwners = append(lotOwners, b.owners[o])
		}
	}
	if err := b.loadLots(ctx, lotOwners); err != nil {
		return nil, err
	}

	for _, r := range rows {
		if err := b.applyOp(ctx, st, r); err != nil {
			return nil, err
		}
		switch r.status {
		case cloud.StatusApplied:
			st.applied[r.op.ID] = &appliedOp{id: r.op.ID, kind: r.op.Kind, card: r.op.Card, owner: r.owner, posted: r.posted, store: st.store, digest: r.digest}
		case cloud.StatusRejected:
			st.refused[r.op.ID] = append(st.refused[r.op.ID], refusal{reason: r.reason, digest: r.digest})
		}
	}
	b.over = st.over
	b.cards = st.cards
	b.rules = st.current
	return rows, nil
}

// ownerOf returns who a card's points belong to, or a member's owner when
// there is no card; "" when neither is given.
func (st *opState) ownerOf(c loyalty.CardHash, m loyalty.MemberID) cloud.Owner {
	if !c.IsZero() {
		if cd, ok := st.cards[c]; ok && cd.member != "" {
			return cloud.MemberOwner(cd.member)
		}
		return cloud.CardOwner(c)
	}
	if m != "" {
		return cloud.MemberOwner(m)
	}
	return ""
}

// touchCard makes sure a card an applied op names is recorded, and
// recorded at the batch's store.
func (st *opState) touchCard(c loyalty.CardHash) {
	if c.IsZero() {
		return
	}
	cd, ok := st.cards[c]
	if !ok {
		cd = &card{isNew: true, dirty: true}
		st.cards[c] = cd
	}
	cd.used = true
}

func (b *book) applyOp(ctx context.Context, st *opState, r *opRow) error {
	op := r.op
	reject := func(reason string) error {
		r.status, r.reason = cloud.StatusRejected, reason
		return nil
	}
	if at := st.bt.ReceivedAt.Add(cloud.MaxClockAhead); op.HLC.Time().After(at) || op.WallTime.After(at) {
		r.flags |= cloud.FlagClockAhead
	}
	if r.invalid {
		return reject(cloud.ReasonInvalid)
	}
	if prev, ok := st.applied[op.ID]; ok {
		if string(prev.digest) != string(r.digest) {
			return reject(cloud.ReasonConflict)
		}
		r.status, r.owner, r.posted = cloud.StatusDuplicate, prev.owner, prev.posted
		st.touchCard(op.Card)
		return nil
	}
	// A retry never flips an outcome: an op refused before (its target
	// had not arrived, say) is refused again for the same reason when it
	// comes again, and one with its ID and other content conflicts.
	if prev, ok := st.refused[op.ID]; ok {
		for _, p := range prev {
			if string(p.digest) == string(r.digest) {
				return reject(p.reason)
			}
		}
		return reject(cloud.ReasonConflict)
	}
	r.status = cloud.StatusApplied
	var err error
	switch op.Kind {
	case loyalty.OpEnroll:
		err = b.enroll(ctx, st, r)
	case loyalty.OpEarn:
		err = b.earn(ctx, st, r)
	case loyalty.OpRedeem:
		err = b.redeem(ctx, st, r)
	case loyalty.OpReverse:
		return b.reverse(ctx, st, r) // records its cards once it is applied
	case loyalty.OpAdjust:
		err = b.adjust(ctx, st, r)
	default:
		return reject(cloud.ReasonInvalid)
	}
	if err == nil && r.status == cloud.StatusApplied {
		st.touchCard(op.Card)
	}
	return err
}

// timing returns when a credit was earned (the terminal's clock, but never
// later than the cloud's) and when it expires under rules r.
func (st *opState) timing(op *loyalty.Op, r *loyalty.Rules) (earned, expires int64) {
	t := op.WallTime
	if t.After(st.bt.ReceivedAt) {
		t = st.bt.ReceivedAt
	}
	if r == nil {
		r = st.current
	}
	if r == nil || r.ExpiryMonths == 0 {
		return t.UnixMicro(), neverExpires
	}
	return t.UnixMicro(), t.UTC().AddDate(0, r.ExpiryMonths, 0).UnixMicro()
}

// enrolledMember is the member an enroll links its card to: the one it
// names, or a new member named by the op's ID.
func enrolledMember(op *loyalty.Op) loyalty.MemberID {
	if op.Member != "" {
		return op.Member
	}
	return loyalty.MemberID(op.ID.String())
}

func (b *book) enroll(ctx context.Context, st *opState, r *opRow) error {
	op := r.op
	member := enrolledMember(op)
	switch cd := st.cards[op.Card]; {
	case cd == nil || cd.member == "":
	case cd.member == member:
		r.owner = cloud.MemberOwner(member)
		return nil
	default:
		r.status, r.reason = cloud.StatusRejected, cloud.ReasonCardLinked
		return nil
	}
	st.touchCard(op.Card)
	cd := st.cards[op.Card]
	to, err := b.owner(ctx, cloud.MemberOwner(member))
	if err != nil {
		return err
	}
	from, err := b.owner(ctx, cloud.CardOwner(op.Card))
	if err != nil {
		return err
	}
	cd.member, cd.dirty = member, true
	// Both owner rows are written even when the card held nothing, so a
	// concurrent transaction holding points on the card conflicts with
	// this link instead of stranding them.
	to.dirty, from.dirty = true, true
	r.owner = to.id
	t := &txn{id: op.ID, part: partMain, kind: kindLink}
	if err := b.link(ctx, from, to, t); err != nil {
		return err
	}
	return b.commit(t)
}

func (b *book) earn(ctx context.Context, st *opState, r *opRow) error {
	op := r.op
	r.owner = st.ownerOf(op.Card, op.Member)
	if r.owner == "" {
		r.flags |= cloud.FlagNoCard
		return nil
	}
	o, err := b.owner(ctx, r.owner)
	if err != nil {
		return err
	}
	if !r.owner.IsMember() {
		r.flags |= cloud.FlagHeld
	} else if op.Card.IsZero() && !o.exists && !o.dirty {
		r.status, r.reason = cloud.StatusRejected, cloud.ReasonNoOwner
		return nil
	}
	rules, err := st.rulesOf(ctx, b, op.RulesVersion)
	if err != nil {
		return err
	}
	if rules == nil {
		r.flags |= cloud.FlagRulesUnknown
	}
	earned, expires := st.timing(op, rules)
	t := &txn{id: op.ID, part: partMain, kind: kindEarn}
	b.credit(o, t, int64(op.Points), st.issued, earned, expires, op.RulesVersion, op.Store)
	if err := b.commit(t); err != nil {
		return err
	}
	r.posted = int64(op.Points)
	if rules != nil {
		tier, _, _ := rules.TierFor(loyalty.Points(o.qualifying))
		if want, ok := reevaluate(rules, op, tier); !ok {
			r.flags |= cloud.FlagRulesUnknown
		} else if delta := want - int64(op.Points); delta != 0 {
			r.flags |= cloud.FlagReevaluated
			t := &txn{id: op.ID, part: partReeval, kind: kindReeval}
			if delta > 0 {
				b.credit(o, t, delta, st.adjust, earned, expires, op.RulesVersion, op.Store)
			} else if _, err := b.debit(ctx, o, t, -delta, st.adjust, st.adjust, lotID(op.ID, partMain)); err != nil {
				return err
			}
			if err := b.commit(t); err != nil {
				return err
			}
			r.posted += delta
		}
	}
	o.qualifying += r.posted
	o.dirty = true
	return nil
}

// reevaluate returns what rules give an earn's basket for a member of
// tier, and false when the cloud has no figure it may post: the rules
// cannot evaluate the basket, or give more than one op may post (as rules
// published before loyalty.Rules.Validate bounded them can). The
// terminal's figure, which loyalty.MaxOpPoints bounded, then stands unchecked.
func reevaluate(rules *loyalty.Rules, op *loyalty.Op, tier string) (int64, bool) {
	want, _, err := rules.Earn(*op.Basket, loyalty.Snapshot{Tier: tier}, op.WallTime)
	if err != nil || want < 0 || want > loyalty.MaxOpPoints {
		return 0, false
	}
	return int64(want), true
}

func (b *book) redeem(ctx context.Context, st *opState, r *opRow) error {
	op := r.op
	r.owner = st.ownerOf(op.Card, "")
	o, err := b.owner(ctx, r.owner)
	if err != nil {
		return err
	}
	if !r.owner.IsMember() {
		r.flags |= cloud.FlagHeld
	}
	t := &txn{id: op.ID, part: partMain, kind: kindRedeem}
	short, err := b.debit(ctx, o, t, -int64(op.Points), st.redeemed, cloud.Account(cloud.AccountShortfall, st.store))
	if err != nil {
		return err
	}
	if err := b.commit(t); err != nil {
		return err
	}
	if short > 0 {
		r.flags |= cloud.FlagOverspend
		o.lastOverspend = b.now
		st.over = append(st.over, overspend{op: op, owner: o.id, shortfall: short})
	}
	r.posted = int64(op.Points)
	if op.Reward == "" {
		return nil // nothing to check the points against
	}
	rules, err := st.rulesOf(ctx, b, op.RulesVersion)
	if err != nil {
		return err
	}
	reward, ok := loyalty.Reward{}, false
	if rules != nil {
		reward, ok = rules.Reward(op.Reward)
	}
	if !ok {
		r.flags |= cloud.FlagRulesUnknown
		return nil
	}
	// The till charged what it recorded, and the customer has the reward:
	// the figure stands, and a cost other than the reward's under the
	// op's rules is flagged for review. Posting the difference would move
	// points the till never showed, and a reversal would have to undo it.
	if -op.Points != reward.Cost {
		r.flags |= cloud.FlagRewardCost
	}
	return nil
}

func (b *book) adjust(ctx context.Context, st *opState, r *opRow) error {
	op := r.op
	r.owner = st.ownerOf(op.Card, op.Member)
	o, err := b.owner(ctx, r.owner)
	if err != nil {
		return err
	}
	if op.Card.IsZero() && !o.exists && !o.dirty {
		r.status, r.reason = cloud.StatusRejected, cloud.ReasonNoOwner
		return nil
	}
	if !r.owner.IsMember() {
		r.flags |= cloud.FlagHeld
	}
	t := &txn{id: op.ID, part: partMain, kind: kindAdjust}
	if op.Points > 0 {
		earned, expires := st.timing(op, nil)
		b.credit(o, t, int64(op.Points), st.adjust, earned, expires, op.RulesVersion, op.Store)
	} else if _, err := b.debit(ctx, o, t, -int64(op.Points), st.adjust, st.adjust); err != nil {
		return err
	}
	r.posted = int64(op.Points)
	return b.commit(t)
}

func (b *book) reverse(ctx context.Context, st *opState, r *opRow) error {
	op := r.op
	target, ok := st.applied[op.Reverses]
	switch {
	case !ok:
		r.status, r.reason = cloud.StatusRejected, cloud.ReasonUnknownTarget
		return nil
	case st.reversed[op.Reverses]:
		r.status, r.reason = cloud.StatusRejected, cloud.ReasonAlreadyReversed
		return nil
	case target.kind == loyalty.OpEnroll || target.kind == loyalty.OpReverse:
		r.status, r.reason = cloud.StatusRejected, cloud.ReasonNotReversible
		return nil
	}
	st.reversed[op.Reverses] = true
	b.reversals = append(b.reversals, [2]loyalty.OpID{op.Reverses, op.ID})
	st.touchCard(op.Card)
	if target.kind == loyalty.OpEarn && target.card.IsZero() {
		// A card-less purchase posted nothing, unless it was claimed since:
		// then the reversal takes the claimed points back from the card.
		if err := touchPurchase(ctx, b.tx, target.id); err != nil {
			return err
		}
		c, ok, err := b.claimOf(ctx, target.id)
		if err != nil {
			return err
		}
		if ok {
			if _, known := st.cards[c.card]; !known {
				loaded, err := b.loadCards(ctx, []loyalty.CardHash{c.card})
				if err != nil {
					return err
				}
				if cd, ok := loaded[c.card]; ok {
					st.cards[c.card] = cd
				}
			}
			st.touchCard(c.card)
			claimed := *target
			claimed.card, claimed.posted = c.card, c.points
			target = &claimed
		}
	}
	r.owner = target.owner
	if !target.card.IsZero() {
		r.owner = st.ownerOf(target.card, "")
	}
	if r.owner == "" || target.posted == 0 {
		return nil // a card-less earn posted nothing; the reversal only marks it
	}
	o, err := b.owner(ctx, r.owner)
	if err != nil {
		return err
	}
	t := &txn{id: op.ID, part: partMain, kind: kindReverse}
	switch {
	case target.posted < 0:
		// A redeem or a negative adjust: the points go back to the lots
		// they were taken from (so they lapse when those lots do), and
		// what was owed beyond them back against where it was booked.
		from, shortfall := st.adjust, st.adjust
		if target.kind == loyalty.OpRedeem {
			from, shortfall = st.redeemed, cloud.Account(cloud.AccountShortfall, target.store)
		}
		// The shortfall comes back first: it repays the debt it made.
		uses, err := b.usesOf(ctx, target.id)
		if err != nil {
			return err
		}
		short := -target.posted
		for _, u := range uses {
			short -= u.amount
		}
		if short > 0 {
			earned, expires := st.timing(op, nil)
			b.credit(o, t, short, shortfall, earned, expires, 0, op.Store)
		}
		if err := b.restore(ctx, o, t, uses, from); err != nil {
			return err
		}
		r.posted = -target.posted
	case target.posted > 0:
		to := st.adjust
		if target.kind == loyalty.OpEarn {
			to = st.issued
			o.qualifying = max(0, o.qualifying-target.posted)
			o.dirty = true // the tier changes even when nothing is taken from the balance
		}
		lots := []string{lotID(target.id, partMain), lotID(target.id, partReeval), lotID(target.id, partClaim)}
		// What of the target's lots lapsed has left the balance already:
		// it goes back from the expired account, not again from the
		// member (who would owe it as a debt). The rest, spent or not, is
		// taken back.
		lapsed, err := b.lapsedOf(ctx, lots)
		if err != nil {
			return err
		}
		lapsed = min(lapsed, target.posted)
		if lapsed > 0 {
			t.add(cloud.Account(cloud.AccountExpired, ""), -lapsed)
			t.add(to, lapsed)
		}
		if _, err := b.debit(ctx, o, t, target.posted-lapsed, to, to, lots...); err != nil {
			return err
		}
		// The result says what the reversal took from the owner: the
		// lapsed points had left already.
		r.posted = -(target.posted - lapsed)
	}
	return b.commit(t)
}

// lapsedOf returns how many points of an op's lots (its main lot first)
// Expire lapsed. While the main lot is open and falls due after the latest
// expiry run's time, none has lapsed: Expire lapses a due lot whole, and
// the op's other lots (a re-evaluation's, a claim's) were made with it or
// later. Only then is nothing read, which is the common case of a
// reversal. An open lot may have lapsed before: a reversed redeem refills
// the lots it used, lapsed ones too. And the batch's receive time is no
// bound: an expiry run may have run with a later time than it (the batch
// waited for the writer, or another cloud's clock runs ahead).
func (b *book) lapsedOf(ctx context.Context, lots []string) (int64, error) {
	if l, ok := b.lots[lots[0]]; ok && l.remaining > 0 && l.expiresAt > max(b.now, b.lapsedUntil) {
		return 0, nil
	}
	ids := make([]any, len(lots))
	for i, id := range lots {
		ids[i] = []byte(id)
	}
	var lapsed int64
	rows, err := b.tx.queryIn(ctx, qLapsed, ids, int64(kindExpire))
	if err != nil {
		return 0, fmt.Errorf("read lapsed points: %w", err)
	}
	err = scanAll(rows, func(rows *sql.Rows) error { return rows.Scan(&lapsed) })
	if err != nil {
		return 0, fmt.Errorf("read lapsed points: %w", err)
	}
	return lapsed, nil
}

// qLapsed sums what Expire took from some lots: their uses by an expiry.
const qLapsed = `SELECT COALESCE(CAST(SUM(u.amount) AS BIGINT), 0) FROM lot_uses u WHERE u.lot IN (?*)
	AND EXISTS (SELECT 1 FROM postings p WHERE p.txid = u.txid AND p.part = u.part AND p.kind = ?)`

// usesOf returns the lots a redeem or a negative adjust took its points from.
func (b *book) usesOf(ctx context.Context, id loyalty.OpID) ([]lotUse, error) {
	var uses []lotUse
	for _, u := range b.uses {
		if u.txid == id && u.part == partMain {
			uses = append(uses, u)
		}
	}
	if len(uses) > 0 {
		return uses, nil
	}
	rows, err := b.tx.QueryContext(ctx, b.s.q(`SELECT lot, amount FROM lot_uses WHERE txid = ? AND part = ?`), id[:], partMain)
	if err != nil {
		return nil, fmt.Errorf("read lots used by %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		u := lotUse{txid: id, part: partMain}
		var lot []byte
		if err := rows.Scan(&lot, &u.amount); err != nil {
			return nil, fmt.Errorf("read lots used by %s: %w", id, err)
		}
		u.lot = string(lot)
		uses = append(uses, u)
	}
	return uses, rows.Err()
}
