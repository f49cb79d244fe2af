package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// loadSeenOps reads the applied ops among ids, and the refusals of those
// refused before, one statement per chunk.
func (b *book) loadSeenOps(ctx context.Context, ids []loyalty.OpID) (map[loyalty.OpID]*appliedOp, map[loyalty.OpID][]refusal, error) {
	applied := make(map[loyalty.OpID]*appliedOp, len(ids))
	refused := map[loyalty.OpID][]refusal{}
	err := chunks(ids, b.s.inMax(), func(ids []loyalty.OpID) error {
		args := make([]any, len(ids))
		for i := range ids {
			args[i] = ids[i][:]
		}
		rows, err := b.tx.queryIn(ctx, qSeenOps, args)
		if err != nil {
			return fmt.Errorf("read ops seen before: %w", err)
		}
		return scanAll(rows, func(rows *sql.Rows) error {
			var a appliedOp
			var id, c []byte
			var status, kind int64
			var reason, o string
			if err := rows.Scan(&id, &status, &reason, &kind, &c, &o, &a.posted, &a.store, &a.digest); err != nil {
				return fmt.Errorf("read ops seen before: %w", err)
			}
			copy(a.id[:], id)
			if cloud.Status(status) != cloud.StatusApplied {
				refused[a.id] = append(refused[a.id], refusal{reason: reason, digest: a.digest})
				return nil
			}
			copy(a.card[:], c)
			a.kind, a.owner = loyalty.OpKind(kind), cloud.Owner(o)
			applied[a.id] = &a
			return nil
		})
	})
	return applied, refused, err
}

// loadReversed reads which of ids were reversed.
func (b *book) loadReversed(ctx context.Context, ids []loyalty.OpID) (map[loyalty.OpID]bool, error) {
	out := map[loyalty.OpID]bool{}
	err := chunks(ids, b.s.inMax(), func(ids []loyalty.OpID) error {
		args := make([]any, len(ids))
		for i := range ids {
			args[i] = ids[i][:]
		}
		rows, err := b.tx.queryIn(ctx, qReversed, args)
		if err != nil {
			return fmt.Errorf("read reversals: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id []byte
			if err := rows.Scan(&id); err != nil {
				return fmt.Errorf("read reversals: %w", err)
			}
			out[loyalty.OpID(id)] = true
		}
		return rows.Err()
	})
	return out, err
}

// loadCards reads the cards among hs.
func (b *book) loadCards(ctx context.Context, hs []loyalty.CardHash) (map[loyalty.CardHash]*card, error) {
	out := make(map[loyalty.CardHash]*card, len(hs))
	err := chunks(hs, b.s.inMax(), func(hs []loyalty.CardHash) error {
		args := make([]any, len(hs))
		for i := range hs {
			args[i] = hs[i][:]
		}
		rows, err := b.tx.queryIn(ctx, qCards, args)
		if err != nil {
			return fmt.Errorf("read cards: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var h []byte
			var m string
			if err := rows.Scan(&h, &m); err != nil {
				return fmt.Errorf("read cards: %w", err)
			}
			out[loyalty.CardHash(h)] = &card{member: loyalty.MemberID(m)}
		}
		return rows.Err()
	})
	return out, err
}

// loadSeen marks the cards among cards that were seen at store before, so
// that only new pairs are written to card_stores: those the store's cache
// knows, and on PostgreSQL those read, where inserting a pair that is
// there costs a speculative insertion each batch (on SQLite it costs one
// index lookup, less than this read).
func (b *book) loadSeen(ctx context.Context, cards map[loyalty.CardHash]*card, store string) error {
	b.s.seen.mark(store, cards)
	if b.s.dialect != Postgres {
		return nil
	}
	var hs []any
	for h, cd := range cards {
		if !cd.seen {
			hs = append(hs, h[:])
		}
	}
	return chunks(hs, b.s.inMax(), func(hs []any) error {
		rows, err := b.tx.queryIn(ctx, qSeenAt, hs, store)
		if err != nil {
			return fmt.Errorf("read cards seen at %s: %w", store, err)
		}
		return scanAll(rows, func(rows *sql.Rows) error {
			var h []byte
			if err := rows.Scan(&h); err != nil {
				return fmt.Errorf("read cards seen at %s: %w", store, err)
			}
			cards[loyalty.CardHash(h)].seen = true
			return nil
		})
	})
}

// flush writes everything the batch decided.
func (b *book) flush(ctx context.Context, bt *cloud.Batch, store string, rows []*opRow) error {
	tx := b.tx
	args := make([]any, 0, len(rows)*20)
	for _, r := range rows {
		op := r.op
		args = append(args, op.Terminal, int64(op.Epoch), int64(op.Seq), op.ID[:], int64(r.status), r.reason, int64(op.Kind),
			store, op.Card[:], string(r.owner), int64(op.Points), r.posted, int64(op.RulesVersion), op.Reverses[:],
			int64(r.flags), op.WallTime.UnixMicro(), int64(op.HLC), b.now, r.digest, op.AppendCanonical(nil))
	}
	if err := tx.insert(ctx, iOps, 20, args); err != nil {
		return err
	}

	if err := b.writeLedger(ctx); err != nil {
		return err
	}
	if err := b.writeState(ctx, store, bt.Terminal); err != nil {
		return err
	}
	if err := tx.write(ctx, iEpoch, bt.Terminal, int64(bt.Epoch), int64(bt.LastSeq), bt.Hash); err != nil {
		return fmt.Errorf("move watermark of %s: %w", bt.Terminal, err)
	}
	if err := tx.write(ctx, iBatch, bt.Terminal, int64(bt.Epoch), int64(bt.FirstSeq), int64(bt.LastSeq), bt.Hash, nonNil(bt.PrevHash), b.now); err != nil {
		return fmt.Errorf("record batch of %s: %w", bt.Terminal, err)
	}
	return b.writeBalances(ctx)
}

// writeState writes the owners, cards, the cards of applied ops seen at
// store, overspend records and reversals that the book changed.
func (b *book) writeState(ctx context.Context, store, terminal string) error {
	tx := b.tx
	var args []any
	var owners []*owner
	for _, o := range b.owners {
		if o.dirty {
			owners = append(owners, o)
		}
	}
	slices.SortFunc(owners, func(a, c *owner) int { return strings.Compare(string(a.id), string(c.id)) })
	var changed []any
	for _, o := range owners {
		avail, debt := b.takeDeltas(o.id)
		switch {
		case o.exists:
			changed = append(changed, string(o.id), o.qualifying, o.lastOverspend, avail, debt)
		case o.no == 0:
			return fmt.Errorf("%w: new owner %s has no number", cloud.ErrInvariant, o.id)
		default:
			args = append(args, string(o.id), o.qualifying, o.lastOverspend, avail, debt, b.now, o.no)
		}
	}
	if err := tx.insert(ctx, iOwners, 7, args); err != nil {
		return err
	}
	if err := tx.insert(ctx, uOwners, 5, changed); err != nil {
		return err
	}

	hs := make([]loyalty.CardHash, 0, len(b.cards))
	for h := range b.cards {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, c loyalty.CardHash) int { return strings.Compare(string(a[:]), string(c[:])) })
	args, changed = args[:0], nil
	seen := make([]any, 0, 2*len(hs))
	for _, h := range hs {
		switch cd := b.cards[h]; {
		case cd.dirty && cd.isNew:
			args = append(args, h[:], string(cd.member), b.now)
		case cd.dirty:
			changed = append(changed, h[:], string(cd.member))
		}
		if cd := b.cards[h]; cd.used && !cd.seen {
			seen = append(seen, store, h[:])
		}
	}
	if err := tx.insert(ctx, iCards, 3, args); err != nil {
		return err
	}
	if err := tx.insert(ctx, uCards, 2, changed); err != nil {
		return err
	}
	if err := tx.insert(ctx, iCardStores, 2, seen); err != nil {
		return err
	}

	args = args[:0]
	for _, o := range b.over {
		args = append(args, o.op.ID[:], string(o.owner), store, terminal, o.shortfall, boolInt(o.op.Offline), b.now)
	}
	if err := tx.insert(ctx, iOverspends, 7, args); err != nil {
		return err
	}
	args = args[:0]
	for _, rv := range b.reversals {
		args = append(args, rv[0][:], rv[1][:])
	}
	if err := tx.insert(ctx, iReversals, 2, args); err != nil {
		return err
	}

	return nil
}

func boolInt(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// checkDirty runs check over every owner the book changed.
func (b *book) checkDirty(ctx context.Context) error {
	var ids []cloud.Owner
	for id, o := range b.owners {
		if o.dirty {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return b.check(ctx, ids)
}

// check halts the transaction unless each owner in ids, and each owner
// whose balances the book moved without its row, has open lots that sum
// to its available balance, no negative balance and no credit on its
// debt, once the book's writes are in. Both sides are read from the
// database after the writes; the book's owners take the balances read.
func (b *book) check(ctx context.Context, ids []cloud.Owner) error {
	if err := b.writeBalances(ctx); err != nil {
		return err
	}
	ids = append(ids, b.balanceOnly...)
	b.balanceOnly = nil
	return chunks(ids, b.s.inMax(), func(ids []cloud.Owner) error {
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = string(id)
		}
		type sums struct{ avail, debt, lots, least, soonest int64 }
		got := make(map[cloud.Owner]*sums, len(ids))
		byNo := make(map[int64]*sums, len(ids))
		nos := make([]any, 0, len(ids))
		rows, err := b.tx.queryIn(ctx, qBalances, args)
		if err != nil {
			return fmt.Errorf("check balances: %w", err)
		}
		err = scanAll(rows, func(rows *sql.Rows) error {
			var id string
			var no int64
			v := sums{soonest: neverExpires}
			if err := rows.Scan(&id, &v.avail, &v.debt, &no); err != nil {
				return fmt.Errorf("check balances: %w", err)
			}
			got[cloud.Owner(id)], byNo[no] = &v, &v
			nos = append(nos, no)
			return nil
		})
		if err != nil {
			return err
		}
		if len(nos) > 0 {
			if rows, err = b.tx.queryIn(ctx, qLotSums, nos); err != nil {
				return fmt.Errorf("check lots: %w", err)
			}
			err = scanAll(rows, func(rows *sql.Rows) error {
				var no, lots, least, soonest int64
				if err := rows.Scan(&no, &lots, &least, &soonest); err != nil {
					return fmt.Errorf("check lots: %w", err)
				}
				if v := byNo[no]; v != nil {
					v.lots, v.least, v.soonest = lots, least, soonest
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, id := range ids {
			v := got[id]
			switch {
			case v == nil:
				return fmt.Errorf("%w: owner %s has postings but no owners row", cloud.ErrInvariant, id)
			case v.least < 0:
				return fmt.Errorf("%w: owner %s has a lot with negative remaining points", cloud.ErrInvariant, id)
			case v.avail < 0:
				return fmt.Errorf("%w: owner %s has a negative available balance %d", cloud.ErrInvariant, id, v.avail)
			case v.debt > 0:
				return fmt.Errorf("%w: owner %s has a positive debt account %d", cloud.ErrInvariant, id, v.debt)
			case v.lots != v.avail:
				b.s.log.Error("lots do not sum to the available balance; rolling back", "owner", string(id), "lots", v.lots, "avail", v.avail)
				return fmt.Errorf("%w: owner %s: lots sum to %d, available balance is %d", cloud.ErrInvariant, id, v.lots, v.avail)
			}
			if o := b.owners[id]; o != nil {
				if o.dirty && o.debt != v.debt {
					return fmt.Errorf("%w: owner %s: debt is %d in the database, %d by the book's postings", cloud.ErrInvariant, id, v.debt, o.debt)
				}
				o.avail, o.debt, o.soonest, o.checked = v.avail, v.debt, v.soonest, true
			}
		}
		return nil
	})
}

// takeDeltas returns and forgets the book's unwritten postings to the
// available and debt accounts of owner id.
func (b *book) takeDeltas(id cloud.Owner) (avail, debt int64) {
	a, d := cloud.OwnerAccount(cloud.AccountAvail, id), cloud.OwnerAccount(cloud.AccountDebt, id)
	avail, debt = b.deltas[a], b.deltas[d]
	delete(b.deltas, a)
	delete(b.deltas, d)
	return avail, debt
}

// writeBalances applies the book's unwritten postings to the balances:
// an owner's to its owners row (those of owners the book wrote went with
// their rows), the program's to accounts. It runs last among the writes
// (on PostgreSQL it sends every queued write), so that check sees all of
// them.
func (b *book) writeBalances(ctx context.Context) error {
	var args, owners []any
	seen := map[cloud.Owner]bool{}
	for _, a := range b.order {
		d, ok := b.deltas[a]
		if !ok {
			continue // written with its owner's row
		}
		if o, isOwner := ownerOfAccount(a); isOwner {
			if !seen[o] {
				seen[o] = true
				avail, debt := b.takeDeltas(o)
				owners = append(owners, string(o), avail, debt)
				b.balanceOnly = append(b.balanceOnly, o)
			}
		} else if d != 0 {
			args = append(args, a, d)
		}
	}
	b.order, b.deltas = nil, map[string]int64{}
	if err := b.tx.insert(ctx, uOwnerBalances, 3, owners); err != nil {
		return err
	}
	if b.s.dialect == Postgres {
		if err := b.tx.insert(ctx, iAccounts, 2, args); err != nil {
			return err
		}
		return b.tx.flush(ctx)
	}
	// SQLite: update the accounts that exist, then insert the others.
	written := make(map[string]bool, len(args)/2)
	scan := func(rows *sql.Rows) error {
		var a string
		if err := rows.Scan(&a); err != nil {
			return fmt.Errorf("read written balances: %w", err)
		}
		written[a] = true
		return nil
	}
	if err := b.tx.insertReturning(ctx, uAccounts, 2, args, scan); err != nil {
		return err
	}
	var fresh []any
	for i := 0; i < len(args); i += 2 {
		if !written[args[i].(string)] {
			fresh = append(fresh, args[i], args[i+1])
		}
	}
	return b.tx.insert(ctx, iNewAccounts, 2, fresh)
}

// ownerOfAccount returns the owner of an owner's account ("avail|" or
// "debt|" and the owner), and false for the program's accounts.
func ownerOfAccount(a string) (cloud.Owner, bool) {
	name, o, _ := strings.Cut(a, "|")
	if name == cloud.AccountAvail || name == cloud.AccountDebt {
		return cloud.Owner(o), true
	}
	return "", false
}

// writeLedger writes the postings, lots and lot uses; writeBalances the
// account balances.
func (b *book) writeLedger(ctx context.Context) error {
	s, tx := b.s, b.tx
	args := make([]any, 0, len(b.postings)*6)
	for _, p := range b.postings {
		args = append(args, p.txid[:], int64(p.part), p.account, p.amount, int64(p.kind), b.now)
	}
	if err := tx.insert(ctx, iPostings, 6, args); err != nil {
		return err
	}

	if err := b.numberOwners(ctx); err != nil {
		return err
	}
	for from, to := range b.moved {
		if !b.owners[from].exists {
			continue // nothing of it is stored
		}
		if _, err := tx.ExecContext(ctx, s.q(uMoveLots), b.owners[to].no, b.owners[from].no); err != nil {
			return fmt.Errorf("move lots of a linked card: %w", err)
		}
	}
	var lots []*lot
	for _, l := range b.lots {
		if l.dirty {
			lots = append(lots, l)
		}
	}
	slices.SortFunc(lots, func(a, c *lot) int { return strings.Compare(a.id, c.id) })
	args = args[:0]
	var changed []any
	for _, l := range lots {
		if !l.fresh {
			changed = append(changed, []byte(l.id), l.remaining)
			continue
		}
		o := b.owners[l.owner]
		if o == nil || o.no == 0 {
			return fmt.Errorf("%w: a new lot's owner %s has no number", cloud.ErrInvariant, l.owner)
		}
		args = append(args, []byte(l.id), o.no, l.amount, l.remaining, l.earnedAt, l.expiresAt, l.rulesVersion, l.store)
	}
	if err := tx.insert(ctx, iLots, 8, args); err != nil {
		return err
	}
	if err := tx.insert(ctx, uLots, 2, changed); err != nil {
		return err
	}

	args = args[:0]
	for _, u := range b.uses {
		args = append(args, u.txid[:], int64(u.part), []byte(u.lot), u.amount)
	}
	if err := tx.insert(ctx, iLotUses, 4, args); err != nil {
		return err
	}
	return nil
}
