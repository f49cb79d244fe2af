package api_test

import (
	"context"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/agent/api"
	"github.com/tillpoint/tillpoint/loyalty"
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

// The cashier screen's last receipts come as pictures too: the state names
// each receipt's PNG, the agent serves it as the printer would print the
// block (one 8-dot column per character at the printer's width), and a
// receipt that is not among the last ones is a 404 problem.
func TestRecentReceiptsAreServedAsPNG(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	known(t, h, cardA, 100, "Silver", time.Now().Add(-time.Minute))
	var r api.OpReply
	if code, body := h.Post(t, "/v1/checkout", "png1", map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1250)}, &r); code != 200 {
		t.Fatalf("checkout: %d %s", code, body)
	}
	st := h.Agent.State()
	if len(st.Receipts) != 1 || st.Receipts[0].PNG != "/v1/receipts/"+r.OpID+"/preview.png" {
		t.Fatalf("screen state receipts: got %+v, want the checkout's with its PNG path", st.Receipts)
	}
	resp, err := http.Get(h.URL + st.Receipts[0].PNG)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET %s: %d %s, want 200 image/png", st.Receipts[0].PNG, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	img, err := png.Decode(resp.Body)
	if err != nil {
		t.Fatalf("the preview is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 42*8 || b.Dy() < 5*8 {
		t.Errorf("preview is %dx%d pixels, want at least 42 columns of 8 dots and a few lines", b.Dx(), b.Dy())
	}
	other := loyalty.OpID{1, 2, 3}
	code, body := h.Get(t, "/v1/receipts/"+other.String()+"/preview.png", nil)
	if p := problem(t, body); code != 404 || p.Code != "not_found" {
		t.Errorf("an unknown receipt: got %d %+v, want 404 not_found", code, p)
	}
	if code, _ := h.Get(t, "/v1/receipts/nope/preview.png", nil); code != 400 {
		t.Errorf("a malformed op ID: got %d, want 400", code)
	}
}
