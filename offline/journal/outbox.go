package journal

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SealedBatch is a batch of this terminal's ops, (Epoch, FirstSeq..LastSeq),
// that the uplink has sealed (encoded and signed) into Payload. A batch is
// sealed once: after a crash or a lost reply the uplink resends these exact
// bytes, so the cloud sees one batch, not two that differ in signature.
type SealedBatch struct {
	Epoch    uint32
	FirstSeq uint64
	LastSeq  uint64
	Payload  []byte
	SealedAt time.Time
}

// PutSealed stores a sealed batch in the outbox before it is first sent.
// Storing the identical batch again is a no-op; a batch that overlaps a
// different sealed one returns ErrSealedConflict (send the stored one
// instead, see Sealed). The ops must be in the journal.
//
// The outbox protocol for the uplink: Sealed lists what is pending, in
// order; resend each until acknowledged; seal new ops after the last
// pending batch's LastSeq (or after the acknowledgement watermark); on an
// acknowledgement call MarkAcked, which deletes every batch it covers.
func (j *Journal) PutSealed(ctx context.Context, epoch uint32, firstSeq, lastSeq uint64, payload []byte) error {
	if epoch == 0 || firstSeq == 0 || lastSeq < firstSeq || len(payload) == 0 {
		return fmt.Errorf("%w: sealed batch epoch %d seqs %d..%d with %d bytes", ErrInvalid, epoch, firstSeq, lastSeq, len(payload))
	}
	payload = bytes.Clone(payload)
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, _ *writer) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM ops WHERE epoch = ? AND seq IN (?, ?)", epoch, int64(firstSeq), int64(lastSeq)).Scan(&n); err != nil {
			return fmt.Errorf("seal batch: %w", classify(err))
		}
		if want := min(2, int(lastSeq-firstSeq+1)); n != want {
			return fmt.Errorf("%w: sealed batch epoch %d seqs %d..%d: the journal does not hold those ops", ErrInvalid, epoch, firstSeq, lastSeq)
		}
		var (
			first, last int64
			stored      []byte
		)
		err := tx.QueryRowContext(ctx, `SELECT first_seq, last_seq, payload FROM sealed
			WHERE epoch = ? AND first_seq <= ? AND last_seq >= ? ORDER BY first_seq LIMIT 1`,
			epoch, int64(lastSeq), int64(firstSeq)).Scan(&first, &last, &stored)
		switch {
		case err == nil && uint64(first) == firstSeq && uint64(last) == lastSeq && bytes.Equal(stored, payload):
			return nil
		case err == nil:
			return fmt.Errorf("%w: epoch %d seqs %d..%d overlap the batch sealed for seqs %d..%d", ErrSealedConflict, epoch, firstSeq, lastSeq, first, last)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("seal batch: %w", classify(err))
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO sealed (epoch, first_seq, last_seq, payload, sealed_at) VALUES (?, ?, ?, ?, ?)",
			epoch, int64(firstSeq), int64(lastSeq), payload, j.opts.Now().UnixNano()); err != nil {
			return fmt.Errorf("seal batch: %w", classify(err))
		}
		return nil
	})
}

// Sealed returns the batches sealed and not yet acknowledged, in journal order.
func (j *Journal) Sealed(ctx context.Context) ([]SealedBatch, error) {
	rows, err := j.rdb.QueryContext(ctx, "SELECT epoch, first_seq, last_seq, payload, sealed_at FROM sealed ORDER BY epoch, first_seq")
	if err != nil {
		return nil, fmt.Errorf("read sealed batches: %w", classify(err))
	}
	defer rows.Close()
	var bs []SealedBatch
	for rows.Next() {
		var b SealedBatch
		var at int64
		if err := rows.Scan(&b.Epoch, &b.FirstSeq, &b.LastSeq, &b.Payload, &at); err != nil {
			return nil, fmt.Errorf("read sealed batches: %w", classify(err))
		}
		b.SealedAt = time.Unix(0, at).UTC()
		bs = append(bs, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sealed batches: %w", classify(err))
	}
	return bs, nil
}

// DeleteSealed removes the sealed batch that starts at (epoch, firstSeq);
// MarkAcked already removes the batches it covers.
func (j *Journal) DeleteSealed(ctx context.Context, epoch uint32, firstSeq uint64) error {
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, _ *writer) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM sealed WHERE epoch = ? AND first_seq = ?", epoch, int64(firstSeq)); err != nil {
			return fmt.Errorf("delete sealed batch: %w", classify(err))
		}
		return nil
	})
}
