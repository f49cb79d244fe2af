package journal

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Entry is a stored op with what the journal knows about it.
type Entry struct {
	Pos   int64 // insertion order, 1-based
	Op    loyalty.Op
	Link  Link
	Acked bool // the cloud acknowledged it
}

// OpsAfter returns up to limit ops that follow (epoch, seq) in journal
// order, for the uplink; OpsAfter(ctx, 0, 0, n) starts at the beginning.
func (j *Journal) OpsAfter(ctx context.Context, epoch uint32, seq uint64, limit int) ([]loyalty.Op, error) {
	es, err := j.entries(ctx, "WHERE (epoch, seq) > (?, ?) ORDER BY epoch, seq LIMIT ?", epoch, int64(seq), limit)
	if err != nil {
		return nil, err
	}
	ops := make([]loyalty.Op, len(es))
	for i, e := range es {
		ops[i] = e.Op
	}
	return ops, nil
}

// Entries returns up to limit entries after row position afterPos, for
// inspection (the CLI's list and export).
func (j *Journal) Entries(ctx context.Context, afterPos int64, limit int) ([]Entry, error) {
	return j.entries(ctx, "WHERE pos > ? ORDER BY pos LIMIT ?", afterPos, limit)
}

// OpByID returns the stored op with id, and false when there is none.
func (j *Journal) OpByID(ctx context.Context, id loyalty.OpID) (loyalty.Op, bool, error) {
	return opByID(ctx, j.rdb, id)
}

func opByID(ctx context.Context, q queryer, id loyalty.OpID) (loyalty.Op, bool, error) {
	var body []byte
	err := q.QueryRowContext(ctx, "SELECT body FROM ops WHERE id = ?", id[:]).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return loyalty.Op{}, false, nil
	}
	if err != nil {
		return loyalty.Op{}, false, fmt.Errorf("read op %s: %w", id, classify(err))
	}
	var op loyalty.Op
	if err := op.UnmarshalBinary(body); err != nil {
		return loyalty.Op{}, false, fmt.Errorf("%w: op %s: %w", ErrCorrupt, id, err)
	}
	return op, true, nil
}

func (j *Journal) entries(ctx context.Context, where string, args ...any) ([]Entry, error) {
	if n := args[len(args)-1].(int); n <= 0 || n > 100000 {
		return nil, fmt.Errorf("%w: limit %d, want 1 to 100000", ErrInvalid, n)
	}
	tx, err := j.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read ops: %w", classify(err))
	}
	defer tx.Rollback()
	m, err := readMeta(ctx, tx)
	if err != nil {
		return nil, err
	}
	ackedPos, _ := strconv.ParseInt(m["acked_pos"], 10, 64)
	rows, err := tx.QueryContext(ctx, "SELECT pos, body, link FROM ops "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read ops: %w", classify(err))
	}
	defer rows.Close()
	var es []Entry
	for rows.Next() {
		var e Entry
		var body, link []byte
		if err := rows.Scan(&e.Pos, &body, &link); err != nil {
			return nil, fmt.Errorf("read ops: %w", classify(err))
		}
		if err := e.Op.UnmarshalBinary(body); err != nil {
			return nil, fmt.Errorf("%w: row %d: %w (run 'tillpoint journal verify')", ErrCorrupt, e.Pos, err)
		}
		copy(e.Link[:], link)
		e.Acked = e.Pos <= ackedPos
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read ops: %w", classify(err))
	}
	return es, nil
}

// MarkAcked records that the cloud has applied every op up to and
// including (epoch, seq), and drops the sealed batches that covers. An
// older acknowledgement than the current one moves nothing. An
// acknowledgement for an op the journal does not hold returns ErrAckAhead
// and changes nothing: the journal lost ops the cloud has, and the uplink
// should call NewEpoch. While a resend is pending (see ResendAll) it
// moves the resend point to (epoch, seq), or ends the resend once (epoch,
// seq) reaches the watermark.
//
// The snapshots the acknowledgement carried are stored in the same
// transaction, so the local view never counts an acknowledged op twice (in
// the snapshot and as unacknowledged) or not at all. They are stored even
// when the acknowledgement is older than the current one (newest wins per
// card).
func (j *Journal) MarkAcked(ctx context.Context, epoch uint32, seq uint64, snaps ...loyalty.Snapshot) error {
	return j.markAckedWith(ctx, epoch, seq, nil, snaps)
}

// MarkAckedChain is MarkAcked that also records, in the same transaction,
// hash: the hash of the batch of epoch that the cloud applied last, which
// ended at seq. The uplink names it as the previous hash of its next batch
// (the cloud checks the chain), after a restart too: see Chain.
func (j *Journal) MarkAckedChain(ctx context.Context, epoch uint32, seq uint64, hash []byte, snaps ...loyalty.Snapshot) error {
	return j.markAckedWith(ctx, epoch, seq, map[string]string{
		"chain_epoch": strconv.FormatUint(uint64(epoch), 10),
		"chain_seq":   strconv.FormatUint(seq, 10),
		"chain_hash":  hex.EncodeToString(hash),
	}, snaps)
}

// markAckedWith moves the acknowledgement watermark to (epoch, seq) (when
// seq > 0), writes meta and stores snaps, in one transaction.
func (j *Journal) markAckedWith(ctx context.Context, epoch uint32, seq uint64, meta map[string]string, snaps []loyalty.Snapshot) error {
	rows, err := snapshotRows(snaps)
	if err != nil {
		return err
	}
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, w *writer) error {
		// The ack's snapshots hold this terminal's ops up to what it
		// acknowledges, whether or not that moves the watermark. During a
		// resend the cloud is one restored from a backup: what an older
		// snapshot held is no bound on a newer one.
		_, resending, err := resendPos(ctx, tx)
		if err != nil {
			return err
		}
		var covers int64
		if seq > 0 {
			if covers, err = markAcked(ctx, tx, w, epoch, seq, resending); err != nil {
				return err
			}
			w.touch(viewTouch{all: true}) // acknowledged ops leave every unacknowledged sum
		} else if covers, err = ackedPos(ctx, tx); err != nil {
			return err
		}
		if err := writeMeta(ctx, tx, meta); err != nil {
			return err
		}
		return putSnapshots(ctx, tx, w, rows, covers, resending)
	})
}

// Chain returns what MarkAckedChain recorded last: the hash of the batch
// of epoch that ended at seq; (0, 0, nil) when nothing was recorded.
func (j *Journal) Chain(ctx context.Context) (epoch uint32, seq uint64, hash []byte, err error) {
	m, err := readMeta(ctx, j.rdb)
	if err != nil {
		return 0, 0, nil, err
	}
	e, _ := strconv.ParseUint(m["chain_epoch"], 10, 32)
	s, _ := strconv.ParseUint(m["chain_seq"], 10, 64)
	if m["chain_hash"] == "" {
		return uint32(e), s, nil, nil
	}
	h, err := hex.DecodeString(m["chain_hash"])
	if err != nil {
		return 0, 0, nil, fmt.Errorf("read chain hash: %w", err)
	}
	return uint32(e), s, h, nil
}

// posOf returns the row of the op at (epoch, seq), and false when the
// journal holds none there.
func posOf(ctx context.Context, q queryer, epoch uint32, seq uint64) (int64, bool, error) {
	var pos int64
	err := q.QueryRowContext(ctx, "SELECT pos FROM ops WHERE epoch = ? AND seq = ?", epoch, int64(seq)).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the row of %d/%d: %w", epoch, seq, classify(err))
	}
	return pos, true, nil
}

// markAcked moves the acknowledgement watermark up to (epoch, seq), and a
// pending resend point (resending) with it, drops the sealed batches the
// ack covers and returns the journal position of (epoch, seq).
func markAcked(ctx context.Context, tx *sql.Tx, w *writer, epoch uint32, seq uint64, resending bool) (int64, error) {
	pos, ok, err := posOf(ctx, tx, epoch, seq)
	if err != nil {
		return 0, fmt.Errorf("mark acked: %w", err)
	}
	if !ok {
		return 0, fmt.Errorf("%w: the cloud acknowledged epoch %d seq %d, this journal is at epoch %d seq %d",
			ErrAckAhead, epoch, seq, w.head.epoch, w.head.seq)
	}
	cur, err := ackedPos(ctx, tx)
	if err != nil {
		return 0, err
	}
	if err := moveResend(ctx, tx, resending, epoch, seq, pos, cur); err != nil {
		return 0, err
	}
	if pos > cur {
		if err := writeMeta(ctx, tx, map[string]string{
			"acked_pos":   strconv.FormatInt(pos, 10),
			"acked_epoch": strconv.FormatUint(uint64(epoch), 10),
			"acked_seq":   strconv.FormatUint(seq, 10),
		}); err != nil {
			return 0, err
		}
	}
	// The sealed batches the ack covers go even when the watermark does
	// not move: a batch sent again to a cloud restored from a backup, and
	// acknowledged there, is delivered as much as the first time. Kept,
	// it would be resent and acknowledged again without end.
	if _, err := tx.ExecContext(ctx, "DELETE FROM sealed WHERE epoch < ? OR (epoch = ? AND last_seq <= ?)", epoch, epoch, int64(seq)); err != nil {
		return 0, fmt.Errorf("drop acknowledged sealed batches: %w", classify(err))
	}
	return pos, nil
}

// Acked returns the cloud's acknowledgement watermark: every op up to
// (epoch, seq) is applied; (0, 0) when nothing is.
func (j *Journal) Acked(ctx context.Context) (epoch uint32, seq uint64, err error) {
	m, err := readMeta(ctx, j.rdb)
	if err != nil {
		return 0, 0, err
	}
	e, _ := strconv.ParseUint(m["acked_epoch"], 10, 32)
	s, _ := strconv.ParseUint(m["acked_seq"], 10, 64)
	return uint32(e), s, nil
}

// Backlog returns the number of ops the cloud has not acknowledged (or,
// while a resend is pending, that follow the resend point: see ResendAll)
// and the wall time of the oldest of them (zero when none). It costs two index
// lookups whatever the backlog: pos is the rowid, which SQLite assigns as
// one more than the largest, and ops are never deleted, so the positions
// are gapless and the count is the last position less the acknowledged one.
func (j *Journal) Backlog(ctx context.Context) (ops int64, oldest time.Time, err error) {
	tx, err := j.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("backlog: %w", classify(err))
	}
	defer tx.Rollback()
	acked, err := unsentPos(ctx, tx)
	if err != nil {
		return 0, time.Time{}, err
	}
	var last, first sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT max(pos) FROM ops").Scan(&last); err != nil {
		return 0, time.Time{}, fmt.Errorf("backlog: %w", classify(err))
	}
	if ops = last.Int64 - acked; ops <= 0 {
		return 0, time.Time{}, nil
	}
	if err := tx.QueryRowContext(ctx, "SELECT wall_time FROM ops WHERE pos > ? ORDER BY pos LIMIT 1", acked).Scan(&first); err != nil {
		return 0, time.Time{}, fmt.Errorf("backlog: %w", classify(err))
	}
	if first.Valid {
		oldest = time.Unix(0, first.Int64).UTC()
	}
	return ops, oldest, nil
}

// Head returns the current epoch and the last seq in it (0 when the epoch
// has no op yet), as committed.
func (j *Journal) Head(ctx context.Context) (epoch uint32, seq uint64, err error) {
	h, err := readHead(ctx, j.rdb)
	return h.epoch, h.seq, err
}

// Stats describe a journal's size and its backlog towards the cloud.
type Stats struct {
	Terminal string
	Store    string
	Epoch    uint32 // current epoch
	Seq      uint64 // last seq in the current epoch (0: none yet)
	Ops      int64  // ops stored, all epochs
	Epochs   int64

	AckedEpoch uint32 // the cloud's acknowledgement watermark
	AckedSeq   uint64
	// Unacked counts the ops the cloud has not acknowledged, or, while a
	// resend is pending (see ResendAll), the ops after the resend point:
	// the cloud lost the rest.
	Unacked int64
	// OldestUnacked is the wall time of the oldest op Unacked counts; zero
	// when there is none.
	OldestUnacked time.Time

	Sealed      int64 // sealed batches waiting for their acknowledgement
	Snapshots   int64
	PeerRedeems int64
}

// Stats returns the journal's counts and backlog.
func (j *Journal) Stats(ctx context.Context) (Stats, error) {
	s := Stats{Terminal: j.terminal, Store: j.store}
	tx, err := j.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s, fmt.Errorf("stats: %w", classify(err))
	}
	defer tx.Rollback()
	h, err := readHead(ctx, tx)
	if err != nil {
		return s, err
	}
	s.Epoch, s.Seq = h.epoch, h.seq
	m, err := readMeta(ctx, tx)
	if err != nil {
		return s, err
	}
	unsent, err := unsentPos(ctx, tx)
	if err != nil {
		return s, err
	}
	ae, _ := strconv.ParseUint(m["acked_epoch"], 10, 32)
	s.AckedEpoch = uint32(ae)
	s.AckedSeq, _ = strconv.ParseUint(m["acked_seq"], 10, 64)
	for _, c := range []struct {
		dst   *int64
		query string
		args  []any
	}{
		{&s.Ops, "SELECT count(*) FROM ops", nil},
		{&s.Epochs, "SELECT count(*) FROM epochs", nil},
		{&s.Unacked, "SELECT count(*) FROM ops WHERE pos > ?", []any{unsent}},
		{&s.Sealed, "SELECT count(*) FROM sealed", nil},
		{&s.Snapshots, "SELECT count(*) FROM snapshots", nil},
		{&s.PeerRedeems, "SELECT count(*) FROM peer_redeems", nil},
	} {
		if err := tx.QueryRowContext(ctx, c.query, c.args...).Scan(c.dst); err != nil {
			return s, fmt.Errorf("stats: %w", classify(err))
		}
	}
	var oldest sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT wall_time FROM ops WHERE pos > ? ORDER BY pos LIMIT 1", unsent).Scan(&oldest); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("stats: %w", classify(err))
	}
	if oldest.Valid {
		s.OldestUnacked = time.Unix(0, oldest.Int64).UTC()
	}
	return s, nil
}
