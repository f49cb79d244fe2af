package journal

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// PeerRedeem is a redeem another terminal of the store made offline, as
// that peer reported it. The offline policy counts it against the card's
// balance and its offline allowance until DropPeerRedeems removes it.
type PeerRedeem struct {
	ID       loyalty.OpID
	Card     loyalty.CardHash
	Points   loyalty.Points // spent: positive
	Terminal string
	Epoch    uint32
	Seq      uint64
	At       time.Time // the peer's wall time of the redeem
}

// PeerRedeemFromOp returns the PeerRedeem of a peer's redeem op.
func PeerRedeemFromOp(op loyalty.Op) (PeerRedeem, error) {
	if op.Kind != loyalty.OpRedeem {
		return PeerRedeem{}, fmt.Errorf("%w: a peer redeem comes from a redeem op, got %s", ErrInvalid, op.Kind)
	}
	return PeerRedeem{ID: op.ID, Card: op.Card, Points: -op.Points, Terminal: op.Terminal, Epoch: op.Epoch, Seq: op.Seq, At: op.WallTime}, nil
}

// PutPeerRedeem records a peer's offline redeem. It returns false, and no
// error, when the redeem is already recorded (by op ID).
func (j *Journal) PutPeerRedeem(ctx context.Context, r PeerRedeem) (bool, error) {
	switch {
	case r.ID.IsZero() || r.Card.IsZero() || r.At.IsZero():
		return false, fmt.Errorf("%w: a peer redeem needs an op id, a card and a time", ErrInvalid)
	case r.Points <= 0 || r.Points > loyalty.MaxOpPoints:
		return false, fmt.Errorf("%w: peer redeem %s spends %d points, want 1 to %d", ErrInvalid, r.ID, r.Points, loyalty.MaxOpPoints)
	case r.Terminal == "" || len(r.Terminal) > loyalty.MaxFieldLen:
		return false, fmt.Errorf("%w: peer redeem %s: terminal id must be 1 to %d bytes", ErrInvalid, r.ID, loyalty.MaxFieldLen)
	case r.Terminal == j.terminal:
		return false, fmt.Errorf("%w: peer redeem %s comes from this terminal; its own ops are in its journal", ErrInvalid, r.ID)
	}
	var added bool
	err := j.write(ctx, func(ctx context.Context, tx *sql.Tx, w *writer) error {
		w.touch(viewTouch{card: r.Card, drop: true})
		res, err := tx.ExecContext(ctx, `INSERT INTO peer_redeems (id, card, points, terminal, epoch, seq, wall_time, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			r.ID[:], r.Card[:], int64(r.Points), r.Terminal, r.Epoch, int64(r.Seq), r.At.UnixNano(), j.opts.Now().UnixNano())
		if err != nil {
			return fmt.Errorf("record peer redeem %s: %w", r.ID, classify(err))
		}
		n, err := res.RowsAffected()
		added = n == 1
		return err
	})
	return added, err
}

// PeerRedeems returns the recorded peer redeems for card, oldest first.
func (j *Journal) PeerRedeems(ctx context.Context, card loyalty.CardHash) ([]PeerRedeem, error) {
	rows, err := j.rdb.QueryContext(ctx, `SELECT id, points, terminal, epoch, seq, wall_time FROM peer_redeems
		WHERE card = ? ORDER BY wall_time, id`, card[:])
	if err != nil {
		return nil, fmt.Errorf("read peer redeems: %w", classify(err))
	}
	defer rows.Close()
	var rs []PeerRedeem
	for rows.Next() {
		r := PeerRedeem{Card: card}
		var id []byte
		var at int64
		if err := rows.Scan(&id, &r.Points, &r.Terminal, &r.Epoch, &r.Seq, &at); err != nil {
			return nil, fmt.Errorf("read peer redeems: %w", classify(err))
		}
		copy(r.ID[:], id)
		r.At = time.Unix(0, at).UTC()
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read peer redeems: %w", classify(err))
	}
	return rs, nil
}

// DropPeerRedeems removes the peer redeems with these op IDs, once a cloud
// snapshot covers them (the peers layer knows from the peer's published
// acknowledgement watermark). Unknown IDs are ignored.
func (j *Journal) DropPeerRedeems(ctx context.Context, ids []loyalty.OpID) error {
	if len(ids) == 0 {
		return nil
	}
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, w *writer) error {
		w.touch(viewTouch{all: true}) // the redeems' cards are not at hand
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, "DELETE FROM peer_redeems WHERE id = ?", id[:]); err != nil {
				return fmt.Errorf("drop peer redeem %s: %w", id, classify(err))
			}
		}
		return nil
	})
}
