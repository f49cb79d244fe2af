package uplink

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// MemJournal is an in-memory Journal for unit tests of the uplink's logic
// (cutting, backoff): the edge of those tests. The uplink's delivery tests
// run against the real offline/journal.
type MemJournal struct {
	mu        sync.Mutex
	Terminal  string
	epoch     uint32
	ops       []loyalty.Op
	ackE      uint32
	ackS      uint64
	sealed    []Sealed
	Snapshots map[loyalty.CardHash]loyalty.Snapshot
}

var _ Journal = (*MemJournal)(nil)

func NewMemJournal(terminal string) *MemJournal {
	return &MemJournal{Terminal: terminal, epoch: 1, Snapshots: map[loyalty.CardHash]loyalty.Snapshot{}}
}

// Append adds an op with the next sequence of the current epoch.
func (j *MemJournal) Append(o loyalty.Op) loyalty.Op {
	j.mu.Lock()
	defer j.mu.Unlock()
	o.Terminal, o.Epoch, o.Seq = j.Terminal, j.epoch, 1
	if n := len(j.ops); n > 0 && j.ops[n-1].Epoch == j.epoch {
		o.Seq = j.ops[n-1].Seq + 1
	}
	j.ops = append(j.ops, o)
	return o
}

func less(e1 uint32, s1 uint64, e2 uint32, s2 uint64) bool { return e1 < e2 || (e1 == e2 && s1 < s2) }

func (j *MemJournal) OpsAfter(_ context.Context, epoch uint32, seq uint64, limit int) ([]loyalty.Op, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []loyalty.Op
	for _, o := range j.ops {
		if less(epoch, seq, o.Epoch, o.Seq) && len(out) < limit {
			out = append(out, o)
		}
	}
	return out, nil
}

func (j *MemJournal) Acked(context.Context) (uint32, uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.ackE, j.ackS, nil
}

func (j *MemJournal) MarkAcked(_ context.Context, epoch uint32, seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !slices.ContainsFunc(j.ops, func(o loyalty.Op) bool { return o.Epoch == epoch && o.Seq == seq }) {
		return fmt.Errorf("%w: %d/%d", ErrAckAhead, epoch, seq)
	}
	if less(j.ackE, j.ackS, epoch, seq) {
		j.ackE, j.ackS = epoch, seq
	}
	j.sealed = slices.DeleteFunc(j.sealed, func(s Sealed) bool { return s.Epoch < epoch || (s.Epoch == epoch && s.Last <= seq) })
	return nil
}

func (j *MemJournal) Backlog(context.Context) (int64, time.Time, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var n int64
	var oldest time.Time
	for _, o := range j.ops {
		if less(j.ackE, j.ackS, o.Epoch, o.Seq) {
			if n == 0 {
				oldest = o.WallTime
			}
			n++
		}
	}
	return n, oldest, nil
}

func (j *MemJournal) PutSnapshots(_ context.Context, snaps []loyalty.Snapshot) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range snaps {
		j.Snapshots[s.Card] = s
	}
	return nil
}

func (j *MemJournal) PutSealed(_ context.Context, epoch uint32, first, last uint64, b []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range j.sealed {
		if s.Epoch == epoch && s.First == first {
			return fmt.Errorf("sealed batch %d/%d exists", epoch, first)
		}
	}
	j.sealed = append(j.sealed, Sealed{Epoch: epoch, First: first, Last: last, Bytes: slices.Clone(b)})
	slices.SortFunc(j.sealed, func(a, b Sealed) int {
		if less(a.Epoch, a.First, b.Epoch, b.First) {
			return -1
		}
		return 1
	})
	return nil
}

func (j *MemJournal) Sealed(context.Context) ([]Sealed, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.sealed), nil
}

func (j *MemJournal) DeleteSealed(_ context.Context, epoch uint32, first uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.sealed = slices.DeleteFunc(j.sealed, func(s Sealed) bool { return s.Epoch == epoch && s.First == first })
	return nil
}

func (j *MemJournal) NewEpoch(context.Context, string) (uint32, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.epoch++
	return j.epoch, nil
}
