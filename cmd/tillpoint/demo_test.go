package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/internal/syncbuf"
)

// The demo is the README's first command: it must run a whole store through
// its day and exit 0 with --exit only when every invariant held.
func TestDemoDayHoldsEveryInvariant(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo runs a whole store; skipped with -short")
	}
	var out, errOut syncbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := m.Run(ctx, []string{"demo", "--exit"})
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	o := out.String()
	for _, want := range []string{
		"Double points weekend x2",
		"REFUSED (offline_cap_reached)",
		"Card not known offline",
		"REFUSED (already_reversed)",
		"every invariant held",
	} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "FAILED") {
		t.Errorf("an invariant failed:\n%s", o)
	}
	for _, card := range []string{cardAna, cardBen, cardCarla} {
		if strings.Contains(o, card) {
			t.Errorf("the demo printed card %s in the clear", card)
		}
	}
}
