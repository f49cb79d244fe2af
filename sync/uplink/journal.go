package uplink

import (
	"context"
	"errors"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Journal is what the uplink needs of the terminal's journal
// (offline/journal implements it). Every method is safe for concurrent use.
type Journal interface {
	// OpsAfter returns up to limit ops that follow (epoch, seq) in journal
	// order ((epoch, seq) ascending, across epochs); (0, 0) is the start.
	OpsAfter(ctx context.Context, epoch uint32, seq uint64, limit int) ([]loyalty.Op, error)
	// Acked returns the acknowledgement watermark: the last op the cloud
	// has acknowledged, (0, 0) when none.
	Acked(ctx context.Context) (epoch uint32, seq uint64, err error)
	// MarkAcked moves the watermark to (epoch, seq) and drops the sealed
	// batches it covers; an older position changes nothing. It returns an
	// error wrapping ErrAckAhead when the journal does not hold that op.
	MarkAcked(ctx context.Context, epoch uint32, seq uint64) error
	// Backlog returns the number of unacknowledged ops and the wall time
	// of the oldest (zero when none).
	Backlog(ctx context.Context) (ops int64, oldest time.Time, err error)
	// PutSnapshots stores the cloud's member snapshots, newer replacing older.
	PutSnapshots(ctx context.Context, snaps []loyalty.Snapshot) error
	// PutSealed stores a sealed batch's exact bytes in the outbox.
	PutSealed(ctx context.Context, epoch uint32, first, last uint64, sealed []byte) error
	// Sealed lists the outbox in (epoch, first) order.
	Sealed(ctx context.Context) ([]Sealed, error)
	// DeleteSealed drops the outbox entry that starts at (epoch, first).
	DeleteSealed(ctx context.Context, epoch uint32, first uint64) error
	// NewEpoch starts a new epoch after the journal lost continuity.
	NewEpoch(ctx context.Context, reason string) (uint32, error)
}

// Sealed is an outbox entry: a batch's exact bytes as first sealed.
type Sealed struct {
	Epoch uint32
	First uint64
	Last  uint64
	Bytes []byte
}

// ErrAckAhead reports an acknowledgement for an op the journal does not
// hold: the journal lost ops that the cloud has (a restore from a backup
// that no local check caught).
var ErrAckAhead = errors.New("uplink: the cloud acknowledged ops this journal does not hold")
