package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// maxExpiring is how many expiry dates a snapshot lists.
const maxExpiring = 3

// ExpiringHorizon is how far ahead a snapshot looks for expiring points:
// the receipt warns of what lapses soon, and the read stays small for
// members with hundreds of open lots.
const ExpiringHorizon = 90 * 24 * time.Hour

// readTx begins a consistent read-only transaction.
func (s *Store) readTx(ctx context.Context) (*dbtx, error) {
	var opts *sql.TxOptions
	if s.dialect == Postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := s.rdb.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("begin ledger read: %w", err)
	}
	return &dbtx{Tx: tx, s: s, cache: s.rst}, nil
}

// Snapshot implements cloud.Ledger.
func (s *Store) Snapshot(ctx context.Context, c loyalty.CardHash, store string, now time.Time) (loyalty.Snapshot, error) {
	if c.IsZero() {
		return loyalty.Snapshot{}, fmt.Errorf("%w: snapshot of the zero card hash", cloud.ErrInvalidInput)
	}
	snaps, err := s.snapshots(ctx, []loyalty.CardHash{c}, store, now)
	if err != nil {
		return loyalty.Snapshot{}, err
	}
	return snaps[0], nil
}

// qStoreCards lists a page of the cards seen at a store: a range of the
// primary key (store, card), so a page reads only its own rows.
const qStoreCards = `SELECT card FROM card_stores WHERE store = ? AND card > ? ORDER BY card LIMIT ?`

// Snapshots implements cloud.Ledger.
func (s *Store) Snapshots(ctx context.Context, store string, after loyalty.CardHash, limit int, now time.Time) ([]loyalty.Snapshot, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: a page of %d snapshots; ask for at least one", cloud.ErrInvalidInput, limit)
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.end(ctx)
	rows, err := tx.query(ctx, qStoreCards, store, after[:], int64(limit))
	if err != nil {
		return nil, fmt.Errorf("list cards of store %s: %w", store, err)
	}
	var cards []loyalty.CardHash
	err = scanAll(rows, func(rows *sql.Rows) error {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			return err
		}
		cards = append(cards, loyalty.CardHash(h))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list cards of store %s: %w", store, err)
	}
	return s.snapshotsIn(ctx, tx, cards, store, now)
}

// snapshots builds the snapshots of cards, in the order given, in one read transaction.
func (s *Store) snapshots(ctx context.Context, cards []loyalty.CardHash, store string, now time.Time) ([]loyalty.Snapshot, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.end(ctx)
	return s.snapshotsIn(ctx, tx, cards, store, now)
}

// snapshotsIn builds the snapshots of cards within tx.
func (s *Store) snapshotsIn(ctx context.Context, tx *dbtx, cards []loyalty.CardHash, store string, now time.Time) ([]loyalty.Snapshot, error) {
	if len(cards) == 0 {
		return nil, nil
	}
	var rules *loyalty.Rules
	if v, err := s.currentRulesVersion(ctx, tx); err != nil {
		return nil, err
	} else if v > 0 {
		if rules, err = s.loadRules(ctx, tx, v); err != nil {
			return nil, err
		}
	}
	out := make([]loyalty.Snapshot, len(cards))
	for off := 0; off < len(cards); off += s.inMax() / 2 {
		end := min(off+s.inMax()/2, len(cards))
		if err := s.snapshotChunk(ctx, tx, cards[off:end], out[off:end], rules, now); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ownerState is what a snapshot shows of the owner of a card.
type ownerState struct {
	qualifying, lastOverspend, avail, debt int64
	expiring                               []loyalty.ExpiringPoints
	// lapsing is what lapses before an allowance made now expires, due
	// dates past included: the allowance leaves it out. The expiring list
	// cannot say it, as it keeps only maxExpiring dates.
	lapsing int64
}

func (s *Store) snapshotChunk(ctx context.Context, tx *dbtx, cards []loyalty.CardHash, out []loyalty.Snapshot, rules *loyalty.Rules, now time.Time) error {
	args := make([]any, len(cards))
	for i := range cards {
		args[i] = cards[i][:]
	}
	members := map[loyalty.CardHash]loyalty.MemberID{}
	rows, err := tx.queryIn(ctx, qCards, args)
	if err != nil {
		return fmt.Errorf("read cards: %w", err)
	}
	err = scanAll(rows, func(rows *sql.Rows) error {
		var h []byte
		var m string
		if err := rows.Scan(&h, &m); err != nil {
			return fmt.Errorf("read cards: %w", err)
		}
		members[loyalty.CardHash(h)] = loyalty.MemberID(m)
		return nil
	})
	if err != nil {
		return err
	}

	owners := make([]cloud.Owner, len(cards))
	var ownerArgs []any
	states := map[cloud.Owner]*ownerState{}
	for i, c := range cards {
		if m := members[c]; m != "" {
			owners[i] = cloud.MemberOwner(m)
		} else {
			owners[i] = cloud.CardOwner(c)
		}
		if states[owners[i]] == nil {
			states[owners[i]] = &ownerState{}
			ownerArgs = append(ownerArgs, string(owners[i]))
		}
	}
	rows, err = tx.queryIn(ctx, qOwners, ownerArgs)
	if err != nil {
		return fmt.Errorf("read owners: %w", err)
	}
	byNo := map[int64]*ownerState{}
	var nos []any
	err = scanAll(rows, func(rows *sql.Rows) error {
		var id string
		var q, lo, avail, debt, no int64
		if err := rows.Scan(&id, &q, &lo, &avail, &debt, &no); err != nil {
			return fmt.Errorf("read owners: %w", err)
		}
		st := states[cloud.Owner(id)]
		*st = ownerState{qualifying: q, lastOverspend: lo, avail: avail, debt: -debt}
		byNo[no] = st
		nos = append(nos, no)
		return nil
	})
	if err != nil {
		return err
	}
	if err := readExpiring(ctx, tx, nos, byNo, now, s.lapseBy(now)); err != nil {
		return err
	}
	return s.assemble(ctx, tx, cards, members, owners, states, rules, now, out)
}

// lapseBy is when an offline allowance made at now expires: what lapses
// before it is not the member's to spend offline.
func (s *Store) lapseBy(now time.Time) time.Time { return now.Add(s.opts.Allowance.TTL) }

// expiringUntil is how far readExpiring reads an owner's lots: for the
// snapshot's list and for what lapses before lapseBy.
func expiringUntil(now, lapseBy time.Time) int64 {
	return max(now.Add(ExpiringHorizon).UnixMicro(), lapseBy.UnixMicro())
}

// readExpiring adds to the states of owners, by number (at most inMax
// of them), their points that lapse within ExpiringHorizon, and what
// lapses before lapseBy.
func readExpiring(ctx context.Context, tx *dbtx, nos []any, states map[int64]*ownerState, now, lapseBy time.Time) error {
	if len(nos) == 0 {
		return nil
	}
	rows, err := tx.queryIn(ctx, qExpiring, nos, expiringUntil(now, lapseBy))
	if err != nil {
		return fmt.Errorf("read expiring points: %w", err)
	}
	horizon := now.Add(ExpiringHorizon)
	return scanAll(rows, func(rows *sql.Rows) error {
		var no, exp, rem int64
		if err := rows.Scan(&no, &exp, &rem); err != nil {
			return fmt.Errorf("read expiring points: %w", err)
		}
		st := states[no]
		at := fromMicros(exp)
		if at.Before(lapseBy) {
			st.lapsing += rem
		}
		if !at.Before(horizon) {
			return nil
		}
		// Points lapsing on the same UTC day are one line, dated by the earliest.
		if n := len(st.expiring); n > 0 && sameDay(st.expiring[n-1].At, at) {
			st.expiring[n-1].Points += loyalty.Points(rem)
		} else if n < maxExpiring {
			st.expiring = append(st.expiring, loyalty.ExpiringPoints{Points: loyalty.Points(rem), At: at})
		}
		return nil
	})
}

// assemble fills out with the snapshots of cards, whose members and
// owners are given, from their owners' states.
func (s *Store) assemble(ctx context.Context, tx *dbtx, cards []loyalty.CardHash, members map[loyalty.CardHash]loyalty.MemberID, owners []cloud.Owner,
	states map[cloud.Owner]*ownerState, rules *loyalty.Rules, now time.Time, out []loyalty.Snapshot) error {
	held, err := s.cardCounts(ctx, tx, members, states)
	if err != nil {
		return err
	}
	asOf := now.UTC().Truncate(time.Microsecond)
	for i, c := range cards {
		st := states[owners[i]]
		snap := loyalty.Snapshot{Card: c, Member: members[c], Balance: loyalty.Points(st.avail), Debt: loyalty.Points(st.debt),
			Expiring: slices.Clone(st.expiring), AsOf: asOf}
		if rules != nil {
			snap.Tier, snap.NextTier, snap.ToNextTier = rules.TierFor(loyalty.Points(st.qualifying))
		}
		snap.Allowance = s.opts.Allowance.Allowance(snap, held[snap.Member], loyalty.Points(st.lapsing), fromMicros(st.lastOverspend), asOf)
		out[i] = snap
	}
	return nil
}

// qMemberCards counts the cards of members, from the index cards_member.
const qMemberCards = `SELECT member, COUNT(*) FROM cards WHERE member IN (?*) GROUP BY member`

// cardCounts returns how many cards each of the members holds, for the
// allowance policy to split a member's allowance between them: a till
// enforces an allowance per card, and every card of a member shows the
// member's whole balance. Only members who may get an allowance (points,
// no debt) are counted.
func (s *Store) cardCounts(ctx context.Context, tx *dbtx, members map[loyalty.CardHash]loyalty.MemberID, states map[cloud.Owner]*ownerState) (map[loyalty.MemberID]int, error) {
	counts := map[loyalty.MemberID]int{}
	var args []any
	for _, m := range members {
		st := states[cloud.MemberOwner(m)]
		if _, ok := counts[m]; ok || m == "" || st == nil || st.avail <= 0 || st.debt > 0 {
			continue
		}
		counts[m] = 1 // the card at hand, until the count is read
		args = append(args, string(m))
	}
	err := chunks(args, s.inMax(), func(args []any) error {
		rows, err := tx.queryIn(ctx, qMemberCards, args)
		if err != nil {
			return err
		}
		return scanAll(rows, func(rows *sql.Rows) error {
			var m string
			var n int
			if err := rows.Scan(&m, &n); err != nil {
				return err
			}
			counts[loyalty.MemberID(m)] = n
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("count members' cards: %w", err)
	}
	return counts, nil
}

// snapshots builds the snapshots of cards once the book's writes are in
// and checked: members, owners and balances as the book holds them
// (balances as the database returned them), expiring points read.
func (b *book) snapshots(ctx context.Context, cards []loyalty.CardHash, members map[loyalty.CardHash]*card, rules *loyalty.Rules, now time.Time) ([]loyalty.Snapshot, error) {
	out := make([]loyalty.Snapshot, len(cards))
	byMember := make(map[loyalty.CardHash]loyalty.MemberID, len(cards))
	owners := make([]cloud.Owner, len(cards))
	for i, c := range cards {
		owners[i] = cloud.CardOwner(c)
		if cd := members[c]; cd != nil && cd.member != "" {
			byMember[c], owners[i] = cd.member, cloud.MemberOwner(cd.member)
		}
	}
	if err := b.loadOwners(ctx, owners); err != nil {
		return nil, err
	}
	states := make(map[cloud.Owner]*ownerState, len(cards))
	byNo := make(map[int64]*ownerState, len(cards))
	var nos []any
	lapseBy := b.s.lapseBy(now)
	horizon := expiringUntil(now, lapseBy)
	for _, id := range owners {
		if states[id] == nil {
			o := b.owners[id]
			st := &ownerState{qualifying: o.qualifying, lastOverspend: o.lastOverspend, avail: o.avail, debt: -o.debt}
			states[id] = st
			// An owner without a number has no lots; one the check
			// read has none expiring before its soonest expiry.
			if o.no != 0 && (!o.checked || o.soonest < horizon) {
				byNo[o.no] = st
				nos = append(nos, o.no)
			}
		}
	}
	err := chunks(nos, b.s.inMax(), func(nos []any) error { return readExpiring(ctx, b.tx, nos, byNo, now, lapseBy) })
	if err != nil {
		return nil, err
	}
	if err := b.s.assemble(ctx, b.tx, cards, byMember, owners, states, rules, now, out); err != nil {
		return nil, err
	}
	return out, nil
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.UTC().Date()
	by, bm, bd := b.UTC().Date()
	return ay == by && am == bm && ad == bd
}
