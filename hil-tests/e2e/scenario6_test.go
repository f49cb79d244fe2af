package e2e_test

import (
	"context"
	"testing"
	"time"
)

// Scenario 6 (scanner side): the scanner's cable is pulled (socat and its
// pty pair end) and plugged back (a new pair at the same path). The agent
// reports the scanner disconnected, then ready, and the next scan opens a
// session, all without restarting the agent.
func TestScenario6_ScannerPtyClosesAndReopens(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStore(t, tillOpts{scanner: true})
	tl := s.tills[0]
	pid := tl.agent.Proc.Pid()
	waitDevice(ctx, t, tl, "scanner", "ok", 20*time.Second)
	tl.scan(t, "2000000000015")
	first := waitSession(ctx, t, tl, "scanner", "0015", "")

	tl.scanEnd.Close()
	if err := tl.scanner.Stop(); err != nil {
		t.Fatal(err)
	}
	waitDevice(ctx, t, tl, "scanner", "disconnected", 30*time.Second)

	if err := tl.scanner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := tl.scanner.OpenA()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	tl.scanEnd = f
	waitDevice(ctx, t, tl, "scanner", "ok", 30*time.Second)
	tl.scan(t, "2000000000022")
	waitSession(ctx, t, tl, "scanner", "0022", first.ID)

	select {
	case <-tl.agent.Proc.Done():
		t.Fatalf("the agent exited during the replug: %v", tl.agent.Proc.Err())
	default:
	}
	if got := tl.agent.Proc.Pid(); got != pid {
		t.Errorf("agent pid: got %d, want %d (not restarted)", got, pid)
	}
}
