package pcscd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/tillpoint/tillpoint/hil-tests/hil"
	"github.com/tillpoint/tillpoint/hil-tests/vcard"
)

// Where Debian's packages put things.
const (
	VPCDConfig   = "/etc/reader.conf.d/vpcd"
	VPCDDriver   = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
	PIDFile      = "/run/pcscd/pcscd.pid"
	ReaderPrefix = "Virtual PCD"
	lockDir      = "tillpoint-hil"
)

// Env is a running pcscd with the vpcd reader.
type Env struct {
	VICCAddr string // where the virtual card connects: 127.0.0.1:<port>
	Reader   string // the PC/SC name of the virtual reader
	pcscd    string
}

// Ensure makes sure pcscd runs with the vpcd driver and returns where the
// virtual card connects. It skips (or fails under TILLPOINT_HIL=require)
// when pcscd or vpcd are not installed.
func Ensure(t testing.TB) *Env {
	t.Helper()
	bin := hil.NeedCommand(t, "pcscd")
	if bin == "" {
		return nil
	}
	if _, err := os.Stat(VPCDDriver); err != nil {
		hil.Missing(t, "the vpcd driver (package vsmartcard-vpcd) is not installed")
		return nil
	}
	port, err := vpcdPort(VPCDConfig)
	if err != nil {
		hil.Missing(t, err.Error())
		return nil
	}
	env := &Env{VICCAddr: fmt.Sprintf("127.0.0.1:%d", port), pcscd: bin}
	unlock, err := flock("start.lock")
	if err != nil {
		t.Fatalf("pcscd: %v", err)
	}
	defer unlock()
	if err := env.start(); err != nil {
		t.Fatalf("pcscd: %v", err)
	}
	return env
}

// Lock gives the calling test the virtual reader to itself until it ends.
func (e *Env) Lock(t testing.TB) {
	t.Helper()
	unlock, err := flock("vpcd.lock")
	if err != nil {
		t.Fatalf("pcscd: %v", err)
	}
	t.Cleanup(unlock)
}

// Stop kills pcscd and waits until it is gone. Hold Lock.
func (e *Env) Stop() error {
	unlock, err := flock("start.lock")
	if err != nil {
		return err
	}
	defer unlock()
	pid, err := runningPID()
	if err != nil {
		return nil // not running
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			return fmt.Errorf("pcscd (pid %d) did not stop", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Start starts pcscd again after Stop and waits for the reader.
func (e *Env) Start() error {
	unlock, err := flock("start.lock")
	if err != nil {
		return err
	}
	defer unlock()
	return e.start()
}

// start runs pcscd if it is not running and waits for the vpcd reader.
// Call with start.lock held.
func (e *Env) start() error {
	var startErr error
	if _, err := runningPID(); err != nil {
		// pcscd daemonizes itself: the command returns once it forked. It
		// exits 1 when another pcscd runs: then the wait below decides.
		out, err := exec.Command(e.pcscd).CombinedOutput()
		if err != nil {
			startErr = fmt.Errorf("start pcscd: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		r, err := findReader()
		if err == nil {
			e.Reader = r
			return nil
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	if startErr != nil {
		return fmt.Errorf("%w; and the vpcd reader did not appear: %w", startErr, last)
	}
	return fmt.Errorf("pcscd started but the vpcd reader did not appear: %w", last)
}

// Insert puts card on the virtual reader once the reader is empty (vpcd
// notices a removed card only at its next poll), and takes it off again,
// waiting until the reader is empty, when the test ends.
func (e *Env) Insert(t testing.TB, card *vcard.Card) *vcard.Session {
	t.Helper()
	if err := e.WaitEmpty(15 * time.Second); err != nil {
		t.Fatalf("pcscd: before inserting a card: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	s, err := card.Insert(ctx, e.VICCAddr)
	if err != nil {
		t.Fatalf("pcscd: %v", err)
	}
	t.Cleanup(func() { _ = e.Remove(s) })
	return s
}

// Remove takes the card off the reader and waits until pcscd sees the
// reader empty.
func (e *Env) Remove(s *vcard.Session) error {
	if err := s.Remove(); err != nil {
		return err
	}
	return e.WaitEmpty(15 * time.Second)
}

// WaitEmpty waits until pcscd reports no card on the virtual reader.
func (e *Env) WaitEmpty(d time.Duration) error {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return fmt.Errorf("establish pcsc context: %w", err)
	}
	defer ctx.Release()
	rs := []scard.ReaderState{{Reader: e.Reader, CurrentState: scard.StateUnaware}}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("reader %q still has a card after %v (state %#x)", e.Reader, d, rs[0].EventState)
		}
		err := ctx.GetStatusChange(rs, left)
		if err != nil && !errors.Is(err, scard.ErrTimeout) {
			return fmt.Errorf("wait for an empty reader: %w", err)
		}
		if err == nil && rs[0].EventState&scard.StateEmpty != 0 {
			return nil
		}
		rs[0].CurrentState = rs[0].EventState &^ scard.StateChanged
	}
}

func findReader() (string, error) {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return "", err
	}
	defer ctx.Release()
	readers, err := ctx.ListReaders()
	if err != nil {
		return "", err
	}
	for _, r := range readers {
		if strings.HasPrefix(r, ReaderPrefix) {
			return r, nil
		}
	}
	return "", fmt.Errorf("no %q reader among %q", ReaderPrefix, readers)
}

// runningPID returns the pid of the running pcscd.
func runningPID() (int, error) {
	b, err := os.ReadFile(PIDFile)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.Trim(string(b), " \t\r\n\x00"))
	if err != nil {
		return 0, err
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0, err
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "pcscd" {
		return 0, errors.New("stale pid file")
	}
	return pid, nil
}

// vpcdPort reads the port from vpcd's reader.conf (DEVICENAME
// /dev/null:0x8C7B; 35963 when it names none).
func vpcdPort(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("vpcd is not configured (%s missing; install vsmartcard-vpcd)", path)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "DEVICENAME" {
			continue
		}
		_, port, ok := strings.Cut(fields[1], ":")
		if !ok {
			return 35963, nil
		}
		n, err := strconv.ParseInt(port, 0, 32)
		if err != nil {
			return 0, fmt.Errorf("vpcd DEVICENAME port %q in %s: %w", port, path, err)
		}
		return int(n), nil
	}
	return 35963, nil
}

// flock takes an exclusive lock on a file shared by every test process.
func flock(name string) (func(), error) {
	dir := filepath.Join(os.TempDir(), lockDir)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: another test held it for 2 minutes", f.Name())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
