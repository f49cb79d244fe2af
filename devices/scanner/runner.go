package scanner

import (
	"context"
	"fmt"
	"sync"
)

// runner owns a scanner's background reader: Open starts it once, Close
// stops it and waits. Serial and HID scanners share it.
type runner struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start runs fn in the background with a context that outlives ctx's
// cancellation and ends with stop. It refuses a second start.
func (r *runner) start(ctx context.Context, path string, fn func(context.Context)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return fmt.Errorf("scanner %s: already open", path)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn(ctx)
	}()
	return nil
}

// stop cancels the reader and waits for it (or for ctx). It reports
// whether a reader was running, so that a second Close does nothing.
func (r *runner) stop(ctx context.Context, path string) (bool, error) {
	r.mu.Lock()
	cancel := r.cancel
	r.cancel = nil
	r.mu.Unlock()
	if cancel == nil {
		return false, nil
	}
	cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true, nil
	case <-ctx.Done():
		return true, fmt.Errorf("scanner %s: close: reader did not stop: %w", path, ctx.Err())
	}
}
