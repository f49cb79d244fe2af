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

// PutSnapshots stores member snapshots from the cloud, keyed by card hash.
// For each card the newest snapshot (by AsOf) wins: an older one arriving
// late changes nothing. It leaves the peers' redeems alone: whether a
// snapshot covers one is known from the peer's acknowledgement watermark,
// not from clocks, and DropPeerRedeems is told so.
func (j *Journal) PutSnapshots(ctx context.Context, snaps []loyalty.Snapshot) error {
	rows, err := snapshotRows(snaps)
	if err != nil || len(rows) == 0 {
		return err
	}
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, w *writer) error {
		return putSnapshots(ctx, tx, w, rows)
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

func putSnapshots(ctx context.Context, tx *sql.Tx, w *writer, rows []snapshotRow) error {
	for _, r := range rows {
		w.touch(viewTouch{card: loyalty.CardHash(r.card), drop: true})
		if _, err := tx.ExecContext(ctx, `INSERT INTO snapshots (card, as_of, body) VALUES (?, ?, ?)
			ON CONFLICT (card) DO UPDATE SET as_of = excluded.as_of, body = excluded.body
			WHERE excluded.as_of > snapshots.as_of`, r.card, r.asOf, string(r.body)); err != nil {
			return fmt.Errorf("store snapshot: %w", classify(err))
		}
	}
	return nil
}

// Snapshot returns the cached snapshot for card, and false when there is none.
func (j *Journal) Snapshot(ctx context.Context, card loyalty.CardHash) (loyalty.Snapshot, bool, error) {
	return snapshot(ctx, j.rdb, card)
}

func snapshot(ctx context.Context, q queryer, card loyalty.CardHash) (loyalty.Snapshot, bool, error) {
	var s loyalty.Snapshot
	var body string
	err := q.QueryRowContext(ctx, "SELECT body FROM snapshots WHERE card = ?", card[:]).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("read snapshot %s: %w", card.Short(), classify(err))
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		return s, false, fmt.Errorf("%w: snapshot %s: %w", ErrCorrupt, card.Short(), err)
	}
	return s, true, nil
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
	// Enrolled is set when no cloud snapshot exists yet but this terminal
	// enrolled the card: Snapshot is then the new member at balance 0 as
	// of the enrollment (no tier: the caller's rules give the base one),
	// and Unacked is everything the card did here since, acknowledged or
	// not, until a snapshot arrives.
	Enrolled bool
}

// Available is what the card may spend now: the balance, less the debt
// the snapshot carries and the peers' uncovered offline redeems.
func (v View) Available() loyalty.Points {
	return v.Balance - v.Snapshot.Debt - v.PeerRedeemed
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
	s, ok, err := snapshot(ctx, q, card)
	if err != nil {
		return v, err
	}
	// since: the ops after this position count on top of the snapshot.
	var since int64
	if ok {
		if since, err = ackedPos(ctx, q); err != nil {
			return v, err
		}
	} else {
		var enrolled bool
		if s, since, enrolled, err = enrolledHere(ctx, q, card); err != nil || !enrolled {
			return v, err
		}
		v.Enrolled = true
	}
	v.Known, v.Snapshot = true, s
	var sum, peers int64
	if err := q.QueryRowContext(ctx, "SELECT coalesce(sum(points), 0), count(*) FROM ops WHERE card = ? AND pos > ?",
		card[:], since).Scan(&sum, &v.UnackedOps); err != nil {
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

// offlineRedeemed sums the offline redeems of card in [since, until), this
// terminal's and its peers'. With sinceSnapshot it counts instead what the
// card's snapshot (as of since) cannot hold: this terminal's offline
// redeems made since or not yet acknowledged, and every peer redeem still
// recorded. It returns a positive amount.
func offlineRedeemed(ctx context.Context, q queryer, card loyalty.CardHash, since, until time.Time, sinceSnapshot bool) (loyalty.Points, error) {
	acked := int64(1<<63 - 1)
	peerSince, peerUntil := since.UnixNano(), until.UnixNano()
	if sinceSnapshot {
		var err error
		if acked, err = ackedPos(ctx, q); err != nil {
			return 0, err
		}
		peerSince, peerUntil = math.MinInt64, math.MaxInt64
	}
	var own, peers int64
	if err := q.QueryRowContext(ctx, `SELECT coalesce(-sum(points), 0) FROM ops
		WHERE card = ? AND kind = ? AND offline = 1 AND ((wall_time >= ? AND wall_time < ?) OR pos > ?)`,
		card[:], int64(loyalty.OpRedeem), since.UnixNano(), until.UnixNano(), acked).Scan(&own); err != nil {
		return 0, fmt.Errorf("read offline redeems: %w", classify(err))
	}
	if err := q.QueryRowContext(ctx, `SELECT coalesce(sum(points), 0) FROM peer_redeems
		WHERE card = ? AND wall_time >= ? AND wall_time < ?`, card[:], peerSince, peerUntil).Scan(&peers); err != nil {
		return 0, fmt.Errorf("read peer redeems: %w", classify(err))
	}
	return loyalty.Points(own + peers), nil
}

// OfflineRedeemed returns what card redeemed offline store-wide as far as
// this journal knows and its snapshot cannot hold: this terminal's offline
// redeems not yet acknowledged or made since the card's snapshot, plus
// every peer redeem recorded (DropPeerRedeems removes those a snapshot
// covers). It is what the offline policy counts against an allowance.
func (j *Journal) OfflineRedeemed(ctx context.Context, card loyalty.CardHash) (loyalty.Points, error) {
	tx, err := j.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("read offline redeems: %w", classify(err))
	}
	defer tx.Rollback()
	s, ok, err := snapshot(ctx, tx, card)
	if err != nil {
		return 0, err
	}
	since := time.Unix(0, math.MaxInt64) // no snapshot: only what is unacknowledged
	if ok {
		since = s.AsOf
	}
	return offlineRedeemed(ctx, tx, card, since, time.Unix(0, math.MaxInt64), true)
}
