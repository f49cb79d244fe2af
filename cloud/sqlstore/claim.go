package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Claim implements cloud.Ledger.
func (s *Store) Claim(ctx context.Context, id loyalty.OpID, card loyalty.CardHash, store string, now time.Time) (cloud.Claimed, error) {
	if card.IsZero() || id.IsZero() {
		return cloud.Claimed{}, fmt.Errorf("%w: a claim needs an op ID and a card", cloud.ErrInvalidInput)
	}
	var out cloud.Claimed
	err := s.inTx(ctx, func(tx *dbtx) error {
		out = cloud.Claimed{}
		var body []byte
		err := tx.QueryRowContext(ctx, s.q(`SELECT body FROM ops WHERE status = 1 AND id = ? AND kind = ?`), id[:], int64(loyalty.OpEarn)).Scan(&body)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("claim %s: %w", id, cloud.ErrNotClaimable)
		} else if err != nil {
			return fmt.Errorf("claim %s: read the purchase: %w", id, err)
		}
		var op loyalty.Op
		if err := op.UnmarshalBinary(body); err != nil {
			return fmt.Errorf("%w: claim %s: stored op does not decode: %w", cloud.ErrInvariant, id, err)
		}
		if !op.Card.IsZero() || op.Member != "" || op.Basket == nil {
			// Its points are already a card's or a member's.
			return fmt.Errorf("claim %s: the purchase was made with a card or for a member: %w", id, cloud.ErrNotClaimable)
		}
		b := newBook(s, tx, micros(now))
		if reversed, err := b.loadReversed(ctx, []loyalty.OpID{id}); err != nil {
			return err
		} else if reversed[id] {
			return fmt.Errorf("claim %s: the purchase was reversed: %w", id, cloud.ErrNotClaimable)
		}
		if _, ok, err := b.claimOf(ctx, id); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("claim %s: %w", id, cloud.ErrAlreadyClaimed)
		}

		pts := op.Points
		rules, err := s.loadRules(ctx, tx, op.RulesVersion)
		switch {
		case errors.Is(err, cloud.ErrNotFound):
			out.Flags |= cloud.FlagRulesUnknown
		case err != nil:
			return err
		default:
			if want, ok := reevaluate(rules, &op, ""); !ok {
				out.Flags |= cloud.FlagRulesUnknown
			} else if want != int64(pts) {
				out.Flags |= cloud.FlagReevaluated
				pts = loyalty.Points(want)
			}
		}

		st := &opState{bt: &cloud.Batch{ReceivedAt: now}, store: store}
		if st.cards, err = b.loadCards(ctx, []loyalty.CardHash{card}); err != nil {
			return err
		}
		if v, err := s.currentRulesVersion(ctx, tx); err != nil {
			return err
		} else if v > 0 {
			if st.current, err = s.loadRules(ctx, tx, v); err != nil {
				return err
			}
		}
		st.touchCard(card)
		o, err := b.owner(ctx, st.ownerOf(card, ""))
		if err != nil {
			return err
		}
		if !o.id.IsMember() {
			out.Flags |= cloud.FlagHeld
		}
		earned, expires := st.timing(&op, rules)
		t := &txn{id: id, part: partClaim, kind: kindClaim}
		b.credit(o, t, int64(pts), cloud.ProgramAccount(cloud.AccountIssued, op.Terminal), earned, expires, op.RulesVersion, op.Store)
		if err := b.commit(t); err != nil {
			return err
		}
		o.qualifying += int64(pts)
		o.dirty = true
		b.cards = st.cards
		if err := b.writeLedger(ctx); err != nil {
			return err
		}
		if err := b.writeState(ctx, store, op.Terminal); err != nil {
			return err
		}
		if err := tx.write(ctx, `INSERT INTO claims (op_id, card, points, at) VALUES (?, ?, ?, ?)`, id[:], card[:], int64(pts), micros(now)); err != nil {
			return fmt.Errorf("record claim %s: %w", id, err)
		}
		if err := touchPurchase(ctx, tx, id); err != nil {
			return err
		}
		if err := b.checkDirty(ctx); err != nil {
			return err
		}
		snaps, err := s.snapshotsIn(ctx, tx, []loyalty.CardHash{card}, store, now)
		if err != nil {
			return err
		}
		out.Points, out.Snapshot = pts, snaps[0]
		return nil
	})
	return out, err
}

// claimOf returns the card a card-less purchase was claimed for and the
// points credited, if it was claimed.
func (b *book) claimOf(ctx context.Context, id loyalty.OpID) (claim struct {
	card   loyalty.CardHash
	points int64
}, ok bool, err error) {
	var card []byte
	err = b.tx.QueryRowContext(ctx, b.s.q(`SELECT card, points FROM claims WHERE op_id = ?`), id[:]).Scan(&card, &claim.points)
	if errors.Is(err, sql.ErrNoRows) {
		return claim, false, nil
	} else if err != nil {
		return claim, false, fmt.Errorf("read claim of %s: %w", id, err)
	}
	copy(claim.card[:], card)
	return claim, true, nil
}

// touchPurchase writes the op row of a card-less purchase without changing
// it. A claim of the purchase and its reversal both do, so that on
// PostgreSQL the two never both commit unaware of each other (they write
// no other row in common): the later fails to serialize and runs again,
// and then the claim is refused, or the reversal takes the claimed points
// back.
func touchPurchase(ctx context.Context, tx *dbtx, id loyalty.OpID) error {
	if _, err := tx.exec(ctx, `UPDATE ops SET flags = flags WHERE status = 1 AND id = ?`, id[:]); err != nil {
		return fmt.Errorf("claim or reversal of %s: %w", id, err)
	}
	return nil
}
