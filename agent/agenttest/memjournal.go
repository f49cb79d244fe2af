package agenttest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/loyalty"
)

// MemJournal is an in-memory stand-in for offline/journal with the same
// local view and offline policy rules, for unit tests at the agent's edge.
type MemJournal struct {
	MaxSnapshotAge time.Duration
	CapPerDay      loyalty.Points

	mu    sync.Mutex
	ops   []loyalty.Op
	ids   map[loyalty.OpID]bool
	snaps map[loyalty.CardHash]loyalty.Snapshot
	// Fail, when set, makes Append fail with it; with FailAfterStore the op
	// is stored all the same (an ambiguous failure).
	Fail           error
	FailAfterStore bool
}

// NewMemJournal returns an empty journal.
func NewMemJournal() *MemJournal {
	return &MemJournal{MaxSnapshotAge: 72 * time.Hour, CapPerDay: 500,
		ids: map[loyalty.OpID]bool{}, snaps: map[loyalty.CardHash]loyalty.Snapshot{}}
}

var _ agent.Journal = (*MemJournal)(nil)

// Append records op with the next sequence number.
func (j *MemJournal) Append(_ context.Context, op *loyalty.Op) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.Fail != nil && !j.FailAfterStore {
		return j.Fail
	}
	if j.ids[op.ID] {
		return fmt.Errorf("%w: %s", agent.ErrDuplicateOp, op.ID)
	}
	op.Epoch, op.Seq = 1, uint64(len(j.ops)+1)
	j.ops = append(j.ops, *op)
	j.ids[op.ID] = true
	return j.Fail
}

// SetFail sets Fail and FailAfterStore.
func (j *MemJournal) SetFail(err error, afterStore bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.Fail, j.FailAfterStore = err, afterStore
}

// PutSnapshot caches a member snapshot, as an ack from the cloud would.
func (j *MemJournal) PutSnapshot(s loyalty.Snapshot) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.snaps[s.Card] = s
}

// Ops returns every op appended.
func (j *MemJournal) Ops() []loyalty.Op {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]loyalty.Op(nil), j.ops...)
}

// View returns the snapshot plus the ops made after it.
func (j *MemJournal) View(_ context.Context, card loyalty.CardHash) (loyalty.Snapshot, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, ok := j.snaps[card]
	if !ok {
		return loyalty.Snapshot{}, false, nil
	}
	for _, op := range j.ops {
		if op.Card == card && op.WallTime.After(s.AsOf) {
			s.Balance += op.Points
		}
	}
	return s, true, nil
}

// CheckRedeem applies the offline policy.
func (j *MemJournal) CheckRedeem(ctx context.Context, card loyalty.CardHash, points loyalty.Points, offline bool, now time.Time) error {
	v, known, _ := j.View(ctx, card)
	if !known {
		return agent.ErrUnknownCard
	}
	if v.Balance < points {
		return agent.ErrInsufficientPoints
	}
	if !offline {
		return nil
	}
	if now.Sub(v.AsOf) > j.MaxSnapshotAge {
		return agent.ErrSnapshotTooOld
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	limit := j.CapPerDay
	if v.Allowance.Valid(now) {
		limit = v.Allowance.Points
	}
	var spent loyalty.Points
	for _, op := range j.ops {
		if op.Card == card && op.Kind == loyalty.OpRedeem && op.Offline && now.Sub(op.WallTime) < 24*time.Hour {
			spent -= op.Points
		}
	}
	if spent+points > limit {
		return agent.ErrOfflineCapReached
	}
	return nil
}
