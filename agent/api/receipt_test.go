package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/agent/api"
	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// The checkout reply carries the loyalty block as text and as ESC/POS that
// prints the same lines; the agent prints it once, however often the POS retries.
func TestCheckoutReceiptIsPrintedOnce(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	known(t, h, cardA, 100, "Silver", time.Now().Add(-time.Minute))
	body := map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1250)}
	var r api.OpReply
	h.Post(t, "/v1/checkout", "rc1", body, &r)
	if r.Receipt == nil {
		t.Fatalf("reply has no receipt block")
	}
	t.Logf("receipt:\n%s", r.Receipt.Text)
	for _, want := range []string{"••••8903", "112"} {
		if !strings.Contains(r.Receipt.Text, want) {
			t.Errorf("receipt text lacks %q:\n%s", want, r.Receipt.Text)
		}
	}
	if strings.Contains(r.Receipt.Text, "2012345678903") {
		t.Errorf("receipt holds the card in the clear")
	}
	doc, err := escpos.Decode(r.Receipt.ESCPOS)
	if err != nil {
		t.Fatalf("ESC/POS does not decode: %v", err)
	}
	if printed := strings.Join(doc.Strings(), "\n"); !strings.Contains(printed, "112") {
		t.Errorf("printed lines lack the balance:\n%s", printed)
	}
	if !r.Printed {
		t.Errorf("printed: got false, want a print job queued")
	}
	agenttest.Eventually(t, 5*time.Second, "the receipt printing", func() bool { return h.Printer.Count() == 1 })
	h.Post(t, "/v1/checkout", "rc1", body, nil)
	h.Agent.Shutdown(context.Background()) // waits for print jobs
	if n := h.Printer.Count(); n != 1 {
		t.Errorf("after a retry: got %d print jobs, want 1", n)
	}
}
