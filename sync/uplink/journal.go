package uplink

import (
	"context"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// Journal is what the uplink needs of the terminal's journal;
// *journal.Journal implements it. The methods are documented there.
type Journal interface {
	// OpsAfter returns up to limit ops that follow (epoch, seq) in
	// journal order, across epochs; (0, 0) is the start.
	OpsAfter(ctx context.Context, epoch uint32, seq uint64, limit int) ([]loyalty.Op, error)
	// Acked returns the acknowledgement watermark, (0, 0) when none.
	Acked(ctx context.Context) (epoch uint32, seq uint64, err error)
	// MarkAcked moves the watermark, drops the sealed batches it covers
	// and stores the ack's snapshots, in one transaction. It returns
	// journal.ErrAckAhead when the journal does not hold (epoch, seq).
	MarkAcked(ctx context.Context, epoch uint32, seq uint64, snaps ...loyalty.Snapshot) error
	// MarkAckedChain is MarkAcked that also records the hash of the batch
	// the cloud applied last, the one that ended at (epoch, seq).
	MarkAckedChain(ctx context.Context, epoch uint32, seq uint64, hash []byte, snaps ...loyalty.Snapshot) error
	// ResendAll records that the journal is to be sent again from its
	// start and empties the outbox, in one transaction; the acks that
	// follow move the resend point until one reaches the watermark.
	ResendAll(ctx context.Context) error
	// ResendFrom records that the cloud lacks the acknowledged ops after
	// (epoch, seq), when that is below the watermark (a gap ack of a
	// restored cloud).
	ResendFrom(ctx context.Context, epoch uint32, seq uint64) error
	// Resending returns the resend point; ok is false when no resend is
	// pending.
	Resending(ctx context.Context) (epoch uint32, seq uint64, ok bool, err error)
	// Chain returns what MarkAckedChain recorded last; (0, 0, nil) when nothing.
	Chain(ctx context.Context) (epoch uint32, seq uint64, hash []byte, err error)
	// Stats gives the backlog (Unacked, OldestUnacked).
	Stats(ctx context.Context) (journal.Stats, error)
	// PutSealed stores a sealed batch's exact bytes in the outbox.
	PutSealed(ctx context.Context, epoch uint32, first, last uint64, payload []byte) error
	// Sealed lists the outbox in journal order.
	Sealed(ctx context.Context) ([]journal.SealedBatch, error)
	// DeleteSealed drops the outbox entry that starts at (epoch, first).
	DeleteSealed(ctx context.Context, epoch uint32, first uint64) error
	// Head returns the journal's current epoch and its last sequence.
	Head(ctx context.Context) (epoch uint32, seq uint64, err error)
	// NewEpoch starts a new epoch after the journal lost continuity.
	NewEpoch(ctx context.Context, reason string) (uint32, error)
}

var _ Journal = (*journal.Journal)(nil)
