package main

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/devices/printer"
	"github.com/tillpoint/tillpoint/hil-tests/printeremu"
	"github.com/tillpoint/tillpoint/loyalty"
)

// A receipt's print job is remembered in the agent's database, not only in
// memory: when the job is retried after the agent restarted (same job ID,
// the op's), the printer does not print the receipt a second time. The
// printer is the ESC/POS emulator on loopback TCP 9100-style.
func TestPrintJobRetriedAfterRestartPrintsOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	emu := printeremu.New()
	addr, err := emu.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	dir := t.TempDir()
	cfg, err := config.ReadFile(writeAgentConfig(t, dir, fmt.Sprintf("[printer]\npath = \"tcp://%s\"\n", addr)))
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*wiring, func()) {
		t.Helper()
		w, err := openWiring(ctx, cfg, slog.New(slog.DiscardHandler), "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		w.start(runCtx)
		return w, func() {
			stop()
			if err := w.close(context.WithoutCancel(ctx)); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	}

	w, stop := start()
	if err := w.agent.SetRules(ctx, demoRules(1, false, time.Now())); err != nil {
		t.Fatal(err)
	}
	card, _ := loyalty.ParseCardToken("barcode:" + cardBen)
	res, err := w.agent.Checkout(ctx, "k1", agent.CheckoutRequest{Card: card,
		Basket: loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "wine", Category: "drinks", Quantity: 1, Amount: 2500}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, 20*time.Second, "the receipt to print", func() bool { return len(emu.Jobs()) == 1 }); err != nil {
		t.Fatal(err)
	}
	stop() // Shutdown waits for the job in flight

	w, stop = start()
	defer stop()
	job := printer.Job{ID: res.OpID.String(), Kind: printer.JobPrint, Data: res.ESCPOS}
	got, err := w.printer.Print(ctx, job)
	if err != nil {
		t.Fatalf("retry after the restart: %v", err)
	}
	if !got.Duplicate || len(emu.Jobs()) != 1 {
		t.Fatalf("retry after the restart: duplicate %v, %d receipts printed; want a duplicate and the one receipt", got.Duplicate, len(emu.Jobs()))
	}
	// A new job still prints: the log remembers IDs, it does not block the printer.
	job.ID = "another-receipt"
	if got, err := w.printer.Print(ctx, job); err != nil || !got.Printed {
		t.Fatalf("a new job after the restart: %+v %v, want printed", got, err)
	}
	if err := waitFor(ctx, 20*time.Second, "the new receipt", func() bool { return len(emu.Jobs()) == 2 }); err != nil {
		t.Fatal(err)
	}
}
