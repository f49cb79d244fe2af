package agenttest

import (
	"context"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Faulty wraps a Journal and fails Append on demand: before the op is
// stored, or after it (an ambiguous failure: the op is durable but the
// caller hears an error).
type Faulty struct {
	agent.Journal

	mu         sync.Mutex
	fail       error
	afterStore bool
}

var _ agent.Journal = (*Faulty)(nil)

// SetFail makes Append fail with err (nil: succeed again).
func (f *Faulty) SetFail(err error, afterStore bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail, f.afterStore = err, afterStore
}

// Append fails as set, or appends.
func (f *Faulty) Append(ctx context.Context, op *loyalty.Op) error {
	f.mu.Lock()
	fail, after := f.fail, f.afterStore
	f.mu.Unlock()
	if fail != nil && !after {
		return fail
	}
	if err := f.Journal.Append(ctx, op); err != nil {
		return err
	}
	return fail
}

// AppendRequest fails as set, or appends.
func (f *Faulty) AppendRequest(ctx context.Context, op *loyalty.Op, key string, meta []byte) error {
	f.mu.Lock()
	fail, after := f.fail, f.afterStore
	f.mu.Unlock()
	if fail != nil && !after {
		return fail
	}
	if err := f.Journal.AppendRequest(ctx, op, key, meta); err != nil {
		return err
	}
	return fail
}

// View passes through.
func (f *Faulty) View(ctx context.Context, card loyalty.CardHash) (loyalty.Snapshot, bool, error) {
	return f.Journal.View(ctx, card)
}

// CheckRedeem passes through.
func (f *Faulty) CheckRedeem(ctx context.Context, card loyalty.CardHash, points loyalty.Points, offline bool, now time.Time) error {
	return f.Journal.CheckRedeem(ctx, card, points, offline, now)
}
