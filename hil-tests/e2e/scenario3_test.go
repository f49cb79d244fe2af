package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
)

// Scenario 3: the printer runs out of paper mid-day. The receipt job
// waits; /v1/status and the cashier screen's event stream say "paper out";
// when paper is back the receipt prints exactly once, and the next one
// prints after it.
func TestScenario3_PaperOutReceiptWaitsThenPrintsOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStore(t, tillOpts{tcpPrinter: true})
	tl := s.tills[0]
	waitDevice(ctx, t, tl, "printer", "ok", 20*time.Second)
	requireRules(ctx, t, tl)
	events, err := tl.agent.Follow(ctx)
	if err != nil {
		t.Fatal(err)
	}

	tl.printer.SetPaperOut(true)
	reason := waitDevice(ctx, t, tl, "printer", "paper_out", 30*time.Second)
	if !strings.Contains(strings.ToLower(reason), "paper") {
		t.Errorf("printer reason for the cashier: got %q, want it to say paper", reason)
	}
	if _, err := events.Wait(ctx, func(e harness.Event) bool { return strings.Contains(e.Data, "paper_out") }); err != nil {
		t.Errorf("cashier screen event stream: %v; want a device event with paper_out", err)
	}

	r := tl.post(ctx, t, "/v1/checkout", "paper-1", map[string]any{"card": "barcode:2000000000015", "basket": basket()})
	if r.Status != 200 {
		t.Fatalf("checkout while paper is out: got %v, want 200 (the sale does not wait for paper)", r)
	}
	// The job is queued, not printed: give the agent a status round trip
	// to prove it noticed, then check nothing printed.
	waitDevice(ctx, t, tl, "printer", "paper_out", 10*time.Second)
	if n := len(tl.printer.Jobs()); n != 0 {
		t.Fatalf("receipts printed while paper was out: got %d, want 0", n)
	}

	tl.printer.SetPaperOut(false)
	tl.waitReceipts(t, 1, 30*time.Second)
	waitDevice(ctx, t, tl, "printer", "ok", 30*time.Second)
	r = tl.post(ctx, t, "/v1/checkout", "paper-2", map[string]any{"card": "barcode:2000000000022", "basket": basket()})
	if r.Status != 200 {
		t.Fatalf("checkout after paper is back: got %v, want 200", r)
	}
	// The printer's queue is first in, first out: a second copy of the
	// waiting receipt would print before the next one, so once the next
	// one printed, the count is final.
	docs := tl.waitReceipts(t, 2, 30*time.Second)
	if len(docs) != 2 {
		t.Fatalf("receipts printed: got %d, want 2 (the waiting one once, then the next)", len(docs))
	}
	for i, want := range []string{"0015", "0022"} {
		text := strings.Join(docs[i].Strings(), "\n")
		if !strings.Contains(text, want) {
			t.Errorf("receipt %d: got\n%s\nwant the card ending %s", i+1, text, want)
		}
	}
	if t.Failed() {
		for i, d := range docs {
			t.Logf("receipt %d:\n%s", i+1, d.Text(42))
		}
	}
}
