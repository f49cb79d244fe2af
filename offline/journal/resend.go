package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// ResendAll records that the cloud lost ops it had acknowledged (it was
// restored from a backup): the uplink is to send the journal again from
// its start. The outbox is emptied in the same transaction, as its batches
// are cut again from there. Each later acknowledgement below the
// watermark moves the resend point to it, and the first that reaches the
// watermark ends the resend (see MarkAcked), so a restarted uplink goes on
// where the last one stopped: see Resending. The acknowledgement watermark
// does not move: the journal's view of balances stays as the cloud's acks
// made it.
func (j *Journal) ResendAll(ctx context.Context) error {
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, _ *writer) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM sealed"); err != nil {
			return fmt.Errorf("resend the journal: drop the outbox: %w", classify(err))
		}
		return setResendPoint(ctx, tx, 0, 0, 0)
	})
}

// ResendFrom records that the cloud lacks this journal's ops after
// (epoch, seq) though it had acknowledged some of them (a signed gap ack
// naming a watermark below the journal's, from a cloud restored from a
// backup): a resend from there, as ResendAll's from the start, and with
// it no feed snapshot is stored until the cloud is back where the journal
// was (see PutSnapshots). The outbox is left to the caller, which re-seals
// from the cloud's watermark. It does nothing when (epoch, seq) is not
// below the acknowledgement watermark and any pending resend point.
func (j *Journal) ResendFrom(ctx context.Context, epoch uint32, seq uint64) error {
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, _ *writer) error {
		pos, ok, err := posOf(ctx, tx, epoch, seq)
		if err != nil || !ok { // not this journal's: nothing it acknowledged lies beyond
			return err
		}
		if unsent, err := unsentPos(ctx, tx); err != nil || pos >= unsent {
			return err
		}
		return setResendPoint(ctx, tx, epoch, seq, pos)
	})
}

// Resending returns where the uplink resends the journal from, after
// ResendAll or ResendFrom: the last op the cloud acknowledged again, (0, 0) before the
// first. ok is false when no resend is pending.
func (j *Journal) Resending(ctx context.Context) (epoch uint32, seq uint64, ok bool, err error) {
	m, err := readMeta(ctx, j.rdb)
	if err != nil {
		return 0, 0, false, err
	}
	if _, ok := m["resend_pos"]; !ok {
		return 0, 0, false, nil
	}
	e, _ := strconv.ParseUint(m["resend_epoch"], 10, 32)
	s, _ := strconv.ParseUint(m["resend_seq"], 10, 64)
	return uint32(e), s, true, nil
}

// moveResend moves a pending resend point (resending) to an
// acknowledgement of (epoch, seq) at row pos, or ends the resend when pos
// reaches the watermark's row acked. Without a pending resend it does
// nothing.
func moveResend(ctx context.Context, tx *sql.Tx, resending bool, epoch uint32, seq uint64, pos, acked int64) error {
	if !resending {
		return nil
	}
	if pos >= acked {
		if _, err := tx.ExecContext(ctx, "DELETE FROM meta WHERE key IN ('resend_epoch', 'resend_seq', 'resend_pos')"); err != nil {
			return fmt.Errorf("end the resend: %w", classify(err))
		}
		return nil
	}
	return setResendPoint(ctx, tx, epoch, seq, pos)
}

// setResendPoint records a pending resend from (epoch, seq), at row pos.
func setResendPoint(ctx context.Context, tx *sql.Tx, epoch uint32, seq uint64, pos int64) error {
	return writeMeta(ctx, tx, map[string]string{
		"resend_epoch": strconv.FormatUint(uint64(epoch), 10),
		"resend_seq":   strconv.FormatUint(seq, 10),
		"resend_pos":   strconv.FormatInt(pos, 10),
	})
}

// resendPos returns the row of a pending resend point, and false when no
// resend is pending.
func resendPos(ctx context.Context, q queryer) (int64, bool, error) {
	var v sql.NullString
	err := q.QueryRowContext(ctx, "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'resend_pos'").Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the resend point: %w", classify(err))
	}
	n, _ := strconv.ParseInt(v.String, 10, 64)
	return n, true, nil
}

// unsentPos returns the row after which ops are not at the cloud: the
// acknowledgement watermark's, or a pending resend point's.
func unsentPos(ctx context.Context, q queryer) (int64, error) {
	acked, err := ackedPos(ctx, q)
	if err != nil {
		return 0, err
	}
	resend, ok, err := resendPos(ctx, q)
	if err != nil || !ok {
		return acked, err
	}
	return min(acked, resend), nil
}
