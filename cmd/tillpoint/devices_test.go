package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/ptypair"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
)

// testMain returns a Main whose output the test reads while it runs.
func testMain() (*Main, *syncbuf.Buffer, *syncbuf.Buffer) {
	out, errb := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	return &Main{Stdout: out, Stderr: errb, Getenv: func(string) string { return "" }}, out, errb
}

func TestDevicesUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"devices"}, {"devices", "bogus"}, {"devices", "watch", "--framing", "semicolon"}} {
		m, _, _ := testMain()
		if code := m.Run(context.Background(), args); code != 2 {
			t.Errorf("%v exit = %d, want 2", args, code)
		}
	}
	m, out, _ := testMain()
	if code := m.Run(context.Background(), []string{"devices", "--help"}); code != 0 || !strings.Contains(out.String(), "--reveal") {
		t.Errorf("devices --help exit %d, output %q; want 0 and the usage", code, out.String())
	}
}

func TestDevicesListRuns(t *testing.T) {
	m, out, errb := testMain()
	if code := m.Run(context.Background(), []string{"devices", "list"}); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "KIND") {
		t.Errorf("output %q, want a table", out.String())
	}
}

// watchScan runs 'devices watch' on a pty scanner, sends one scan, and
// returns the output once the scan line is there.
func watchScan(t *testing.T, extra ...string) string {
	t.Helper()
	p := ptypair.New(t)
	m, out, errb := testMain()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	args := append([]string{"devices", "watch", "--no-nfc", "--baud", "115200", "--scanner", p.B}, extra...)
	go func() { done <- m.Run(ctx, args) }()
	waitFor := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond(out.String()) {
			if time.Now().After(deadline) {
				cancel()
				<-done
				t.Fatalf("waited for %s; output %q, stderr %q", what, out.String(), errb.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("scanner ready", func(s string) bool { return strings.Contains(s, "Scanner: ready") })
	f, err := p.OpenA()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("]E02012345678903\r"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor("scan line", func(s string) bool { return strings.Contains(s, " scan ") })
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d, want 0 on Ctrl-C", code)
	}
	return out.String()
}

func TestDevicesWatchRedactsCardValues(t *testing.T) {
	out := watchScan(t)
	if strings.Contains(out, "2012345678903") {
		t.Errorf("watch printed the full card number without --reveal:\n%s", out)
	}
	if !strings.Contains(out, "EAN-13 ]E0 …8903") {
		t.Errorf("watch output lacks the redacted scan:\n%s", out)
	}
}

func TestDevicesWatchRevealShowsCardValues(t *testing.T) {
	out := watchScan(t, "--reveal")
	if !strings.Contains(out, "EAN-13 ]E0 2012345678903") {
		t.Errorf("watch --reveal output lacks the full scan:\n%s", out)
	}
}
