package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a running process of the binary, in its own process group, with
// its stdout and stderr kept for assertions and for the failure report.
type Proc struct {
	Name string // for logs: "cloud", "agent t1"
	Args []string

	cmd  *exec.Cmd
	out  *logBuf
	done chan struct{}
	err  error // exit status, once done is closed
}

// logBuf is a goroutine-safe buffer that signals each write.
type logBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newLogBuf() *logBuf { return &logBuf{changed: make(chan struct{})} }

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.b.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return n, err
}

func (l *logBuf) snapshot() (string, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.changed
}

// Start runs the binary with args and ends it when the test ends. Its
// output is printed with the test's log if the test fails.
func Start(t testing.TB, name string, env []string, args ...string) *Proc {
	t.Helper()
	p, err := start(Binary(t), name, env, args...)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("---- output of %s (%s) ----\n%s---- end of %s ----", p.Name, strings.Join(p.Args, " "), p.Output(), p.Name)
		}
	})
	return p
}

func start(bin, name string, env []string, args ...string) (*Proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, so Kill reaches anything it starts; and
	// killed with the test process, should that die without cleaning up
	// (go test's -timeout panics past every t.Cleanup).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out := newLogBuf()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Args: args, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Output returns everything the process wrote so far.
func (p *Proc) Output() string {
	s, _ := p.out.snapshot()
	return s
}

// Pid returns the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns how the process exited; call after Done.
func (p *Proc) Err() error { return p.err }

// WaitOutput waits until the output holds a line starting with prefix and
// returns the rest of that line. It fails early when the process exits.
func (p *Proc) WaitOutput(ctx context.Context, prefix string) (string, error) {
	for {
		s, changed := p.out.snapshot()
		lines := strings.Split(s, "\n")
		for _, line := range lines[:len(lines)-1] { // complete lines only
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return rest, nil
			}
		}
		select {
		case <-changed:
		case <-p.done:
			if s2, _ := p.out.snapshot(); s2 != s {
				continue
			}
			return "", fmt.Errorf("%s exited (%v) before printing %q", p.Name, p.err, prefix)
		case <-ctx.Done():
			return "", fmt.Errorf("%s did not print %q: %w", p.Name, prefix, ctx.Err())
		}
	}
}

// Kill sends SIGKILL to the process group (kill -9) and waits for the exit.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to d for a clean exit, then kills.
// It returns the exit error of a clean exit, or an error saying it had to kill.
func (p *Proc) Stop(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.Kill()
		return errors.New(p.Name + " did not stop within " + d.String() + " of SIGTERM; killed")
	}
}

// Run runs the binary to completion and returns its stdout; stderr goes
// into the error when it fails.
func Run(ctx context.Context, t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("tillpoint %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
