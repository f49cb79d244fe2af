package journal

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// PutSnapshots stores member snapshots from the cloud's feed, keyed by
// card hash, as holding this terminal's ops up to its acknowledgement
// watermark. For each card the newest snapshot (by AsOf) wins: an older
// one arriving late changes nothing. It leaves the peers' redeems alone:
// whether a snapshot covers one is known from the peer's acknowledgement
// watermark, not from clocks, and DropPeerRedeems is told so.
//
// While a resend is pending (see ResendAll) it stores nothing: the cloud
// then holds less than the watermark says, and its pages cannot tell how
// much. The acks of the resend bring the cards' snapshots meanwhile.
func (j *Journal) PutSnapshots(ctx context.Context, snaps []loyalty.Snapshot) error {
	rows, err := snapshotRows(snaps)
	if err != nil || len(rows) == 0 {
		return err
	}
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, w *writer) error {
		if _, resending, err := resendPos(ctx, tx); err != nil || resending {
			return err
		}
		covers, err := ackedPos(ctx, tx)
		if err != nil {
			return err
		}
		return putSnapshots(ctx, tx, w, rows, covers, false)
	})
}

type snapshotRow struct {
	card []byte
	asOf int64
	body []byte
}

func snapshotRows(snaps []loyalty.Snapshot) ([]snapshotRow, error) {
	rows := make([]snapshotRow, 0, len(snaps))
	for i, s := range snaps {
		if s.Card.IsZero() || s.AsOf.IsZero() {
			return nil, fmt.Errorf("%w: snapshot %d needs a card and an as-of time", ErrInvalid, i)
		}
		body, err := json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("%w: snapshot %d: %w", ErrInvalid, i, err)
		}
		rows = append(rows, snapshotRow{card: bytes.Clone(s.Card[:]), asOf: s.AsOf.UnixNano(), body: body})
	}
	return rows, nil
}

// putSnapshots stores rows, each holding this terminal's ops up to the
// journal position covers. A card's newer snapshot holds what its older
// one held, whichever came first (an ack's snapshot arriving after a feed
// page stamped later, say): the stored position is the higher of the two.
// Not so when the cloud lost ops since the older one (restored, during a
// resend): with exact, a newer snapshot holds just what covers says.
func putSnapshots(ctx context.Context, tx *sql.Tx, w *writer, rows []snapshotRow, covers int64, exact bool) error {
	held := `max(coalesce(snapshots.covers, excluded.covers), excluded.covers)`
	if exact {
		held = `CASE WHEN excluded.as_of > snapshots.as_of THEN excluded.covers ELSE snapshots.covers END`
	}
	for _, r := range rows {
		w.touch(viewTouch{card: loyalty.CardHash(r.card), drop: true})
		if _, err := tx.ExecContext(ctx, `INSERT INTO snapshots (card, as_of, body, covers) VALUES (?, ?, ?, ?)
			ON CONFLICT (card) DO UPDATE SET
				body = CASE WHEN excluded.as_of > snapshots.as_of THEN excluded.body ELSE snapshots.body END,
				as_of = max(snapshots.as_of, excluded.as_of),
				covers = `+held,
			r.card, r.asOf, string(r.body), covers); err != nil {
			return fmt.Errorf("store snapshot: %w", classify(err))
		}
	}
	return nil
}

// Snapshot returns the cached snapshot for card, and false when there is none.
func (j *Journal) Snapshot(ctx context.Context, card loyalty.CardHash) (loyalty.Snapshot, bool, error) {
	s, _, ok, err := snapshot(ctx, j.rdb, card)
	return s, ok, err
}

// held is what a card's snapshot holds of this terminal's ops: those up
// to the journal position covers (see putSnapshots). A snapshot stored
// before snapshots said so (legacy, covers NULL) reads as the view took
// every snapshot then: as holding the ops up to the acknowledgement
// watermark, but not the offline redeems made since its AsOf, which its
// allowance counts (legacySince; zero for any other snapshot).
type held struct {
	covers      int64
	legacySince time.Time
}

// snapshot returns card's snapshot and what it holds of this terminal's ops.
func snapshot(ctx context.Context, q queryer, card loyalty.CardHash) (s loyalty.Snapshot, h held, ok bool, err error) {
	var body string
	var pos sql.NullInt64
	err = q.QueryRowContext(ctx, "SELECT body, covers FROM snapshots WHERE card = ?", card[:]).Scan(&body, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		return s, h, false, nil
	}
	if err != nil {
		return s, h, false, fmt.Errorf("read snapshot %s: %w", card.Short(), classify(err))
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		return s, h, false, fmt.Errorf("%w: snapshot %s: %w", ErrCorrupt, card.Short(), err)
	}
	h.covers = pos.Int64
	if !pos.Valid { // legacy
		if h.covers, err = ackedPos(ctx, q); err != nil {
			return s, h, false, err
		}
		h.legacySince = s.AsOf
	}
	return s, h, true, nil
}

// View is the terminal's local view of a card: the cloud's last snapshot
// plus what this terminal did since that the cloud has not acknowledged.
type View struct {
	Card     loyalty.CardHash
	Known    bool // a snapshot exists; the fields below are zero otherwise
	Snapshot loyalty.Snapshot
	// Unacked is the sum of the points of this terminal's ops for the card
	// that the cloud has not acknowledged, UnackedOps their number.
	Unacked    loyalty.Points
	UnackedOps int
	// Balance is Snapshot.Balance + Unacked.
	Balance loyalty.Points
	// PeerRedeemed is what store peers redeemed offline with the card, as
	// recorded and not yet dropped as covered by a snapshot.
	PeerRedeemed loyalty.Points
	// held is what Snapshot holds of this terminal's ops: the ops after
	// its position are the Unacked ones.
	held held
	// Enrolled is set when no cloud snapshot exists yet but this terminal
	// enrolled the card: Snapshot is then the new member at balance 0 as
	// of the enrollment (no tier: the caller's rules give the base one),
	// and Unacked is everything the card did here since, acknowledged or
	// not, until a snapshot arrives.
	Enrolled bool
}

// Available is what the card may spend now: the balance, less the debt
// the snapshot carries and the peers' uncovered offline redeems. It
// saturates rather than wraps, whatever a snapshot or a peer claimed.
func (v View) Available() loyalty.Points {
	return subSaturating(subSaturating(v.Balance, v.Snapshot.Debt), v.PeerRedeemed)
}

// subSaturating returns a-b, or the int64 bound it would wrap past.
func subSaturating(a, b loyalty.Points) loyalty.Points {
	switch d := a - b; {
	case b > 0 && d > a:
		return math.MinInt64
	case b < 0 && d < a:
		return math.MaxInt64
	default:
		return d
	}
}

// View returns the local view of card. A card without a snapshot gives a
// View with Known false and no error. A card read recently is answered from
// memory, kept in step with every commit (see viewCache).
func (j *Journal) View(ctx context.Context, card loyalty.CardHash) (View, error) {
	var gen uint64
	if j.views != nil {
		v, g, ok := j.views.get(card)
		if ok {
			return v, nil
		}
		gen = g
	}
	tx, err := j.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return View{}, fmt.Errorf("read view: %w", classify(err))
	}
	defer tx.Rollback()
	v, err := view(ctx, tx, card)
	if err == nil && j.views != nil {
		j.views.fill(v, gen)
	}
	return v, err
}

func ackedPos(ctx context.Context, q queryer) (int64, error) {
	var v sql.NullString
	err := q.QueryRowContext(ctx, "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'acked_pos'").Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read acknowledgement watermark: %w", classify(err))
	}
	n, _ := strconv.ParseInt(v.String, 10, 64)
	return n, nil
}

func view(ctx context.Context, q queryer, card loyalty.CardHash) (View, error) {
	v := View{Card: card}
	// The ops after h.covers count on top of the snapshot.
	s, h, ok, err := snapshot(ctx, q, card)
	if err != nil {
		return v, err
	}
	if !ok {
		var enrolled bool
		if s, h.covers, enrolled, err = enrolledHere(ctx, q, card); err != nil || !enrolled {
			return v, err
		}
		v.Enrolled = true
	}
	v.Known, v.Snapshot, v.held = true, s, h
	var sum, peers int64
	if err := q.QueryRowContext(ctx, "SELECT coalesce(sum(points), 0), count(*) FROM ops WHERE card = ? AND pos > ?",
		card[:], h.covers).Scan(&sum, &v.UnackedOps); err != nil {
		return v, fmt.Errorf("read unacknowledged ops: %w", classify(err))
	}
	if err := q.QueryRowContext(ctx, "SELECT coalesce(sum(points), 0) FROM peer_redeems WHERE card = ?", card[:]).Scan(&peers); err != nil {
		return v, fmt.Errorf("read peer redeems: %w", classify(err))
	}
	v.Unacked, v.PeerRedeemed = loyalty.Points(sum), loyalty.Points(peers)
	if v.Balance, err = s.Balance.Add(v.Unacked); err != nil {
		return v, err
	}
	return v, nil
}

// enrolledHere returns the view's base for a card this terminal enrolled
// and the cloud has sent no snapshot of yet: the new member at balance 0 as
// of the enrollment, and the enrollment's position, after which the card's
// ops count on top of it.
func enrolledHere(ctx context.Context, q queryer, card loyalty.CardHash) (loyalty.Snapshot, int64, bool, error) {
	var pos int64
	var body []byte
	err := q.QueryRowContext(ctx, "SELECT pos, body FROM ops WHERE card = ? AND kind = ? ORDER BY pos DESC LIMIT 1",
		card[:], int64(loyalty.OpEnroll)).Scan(&pos, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return loyalty.Snapshot{}, 0, false, nil
	}
	if err != nil {
		return loyalty.Snapshot{}, 0, false, fmt.Errorf("read enrollment %s: %w", card.Short(), classify(err))
	}
	var op loyalty.Op
	if err := op.UnmarshalBinary(body); err != nil {
		return loyalty.Snapshot{}, 0, false, fmt.Errorf("%w: enrollment of %s at row %d: %w", ErrCorrupt, card.Short(), pos, err)
	}
	return loyalty.Snapshot{Card: card, Member: op.Member, AsOf: op.WallTime}, pos, true, nil
}

// uncoveredRedeems sums what card redeemed that a snapshot holding this
// terminal's ops up to position covers cannot hold: this terminal's redeems
// after it, offline or not (the cloud has seen none of them), and every
// peer redeem still recorded (DropPeerRedeems removes those a snapshot
// covers). It returns a positive amount.
func uncoveredRedeems(ctx context.Context, q queryer, card loyalty.CardHash, h held) (loyalty.Points, error) {
	since := int64(math.MaxInt64) // no legacy snapshot: no redeem by its time
	if !h.legacySince.IsZero() {
		since = h.legacySince.UnixNano()
	}
	var own, peers int64
	if err := q.QueryRowContext(ctx, `SELECT coalesce(-sum(points), 0) FROM ops
		WHERE card = ? AND kind = ? AND (pos > ? OR (offline = 1 AND wall_time >= ?))`,
		card[:], int64(loyalty.OpRedeem), h.covers, since).Scan(&own); err != nil {
		return 0, fmt.Errorf("read redeems: %w", classify(err))
	}
	if err := q.QueryRowContext(ctx, "SELECT coalesce(sum(points), 0) FROM peer_redeems WHERE card = ?", card[:]).Scan(&peers); err != nil {
		return 0, fmt.Errorf("read peer redeems: %w", classify(err))
	}
	return loyalty.Points(own).Add(loyalty.Points(peers))
}

// redeemedBetween sums card's offline redeems made in [since, until) by
// the wall clock: this terminal's redeems marked offline or after position
// covers (the cloud has not seen them), and its peers'. It returns a
// positive amount.
func redeemedBetween(ctx context.Context, q queryer, card loyalty.CardHash, since, until time.Time, covers int64) (loyalty.Points, error) {
	var own, peers int64
	if err := q.QueryRowContext(ctx, `SELECT coalesce(-sum(points), 0) FROM ops
		WHERE card = ? AND kind = ? AND wall_time >= ? AND wall_time < ? AND (offline = 1 OR pos > ?)`,
		card[:], int64(loyalty.OpRedeem), since.UnixNano(), until.UnixNano(), covers).Scan(&own); err != nil {
		return 0, fmt.Errorf("read offline redeems: %w", classify(err))
	}
	if err := q.QueryRowContext(ctx, `SELECT coalesce(sum(points), 0) FROM peer_redeems
		WHERE card = ? AND wall_time >= ? AND wall_time < ?`, card[:], since.UnixNano(), until.UnixNano()).Scan(&peers); err != nil {
		return 0, fmt.Errorf("read peer redeems: %w", classify(err))
	}
	return loyalty.Points(own).Add(loyalty.Points(peers))
}

// OfflineRedeemed returns what card redeemed store-wide without the cloud
// as far as this journal knows and its snapshot cannot hold: this
// terminal's redeems after the position the snapshot covers (or the
// acknowledgement watermark, without a snapshot), plus every peer redeem
// recorded. It is what the offline policy counts against an allowance.
func (j *Journal) OfflineRedeemed(ctx context.Context, card loyalty.CardHash) (loyalty.Points, error) {
	tx, err := j.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("read offline redeems: %w", classify(err))
	}
	defer tx.Rollback()
	_, h, ok, err := snapshot(ctx, tx, card)
	if err != nil {
		return 0, err
	}
	if !ok {
		if h.covers, err = ackedPos(ctx, tx); err != nil {
			return 0, err
		}
	}
	return uncoveredRedeems(ctx, tx, card, h)
}
