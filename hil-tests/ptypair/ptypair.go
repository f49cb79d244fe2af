package ptypair

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/hil"
)

// Pair is a running socat linking two pty paths.
type Pair struct {
	A, B string // the two ends; bytes written on one are read on the other

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// New starts a pair with both links in a fresh temporary directory and
// stops it when the test ends. It skips (or fails, see package hil) when
// socat is missing.
func New(t testing.TB) *Pair {
	t.Helper()
	return NewIn(t, t.TempDir())
}

// NewIn is New with both links in dir, for programs that take only device
// paths (a directory under /dev/shm passes a "must be under /dev/" check).
func NewIn(t testing.TB, dir string) *Pair {
	t.Helper()
	hil.NeedCommand(t, "socat")
	p := &Pair{A: filepath.Join(dir, "a"), B: filepath.Join(dir, "b")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatalf("ptypair: %v", err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

// Start runs socat and waits until both links exist. It is a replug when
// the pair was stopped.
func (p *Pair) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("ptypair: already running")
	}
	path, err := exec.LookPath("socat")
	if err != nil {
		return fmt.Errorf("ptypair: socat not found; install it ('sudo make deps'): %w", err)
	}
	cmd := exec.Command(path,
		"pty,raw,echo=0,link="+p.A,
		"pty,raw,echo=0,link="+p.B)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("ptypair: start socat: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	for {
		_, errA := os.Stat(p.A)
		_, errB := os.Stat(p.B)
		if errA == nil && errB == nil {
			return nil
		}
		select {
		case <-done:
			p.cmd = nil
			return fmt.Errorf("ptypair: socat exited before creating %s and %s", p.A, p.B)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			p.cmd = nil
			return fmt.Errorf("ptypair: waiting for socat's links: %w", ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Stop ends socat (an unplug) and waits until it is gone and its links are
// removed. Stopping a stopped pair does nothing.
func (p *Pair) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
	// socat removes its links on a clean exit; make sure, so a replug is
	// seen as new.
	_ = os.Remove(p.A)
	_ = os.Remove(p.B)
	return nil
}

// OpenA opens end A for the test's side of the cable (raw, as socat set it).
func (p *Pair) OpenA() (*os.File, error) {
	f, err := os.OpenFile(p.A, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("ptypair: open %s: %w", p.A, err)
	}
	return f, nil
}
