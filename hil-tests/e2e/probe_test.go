package e2e_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestProbeAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStore(t, tillOpts{scanner: true, tcpPrinter: true, nfcReader: "Virtual PCD"})
	tl := s.tills[0]
	r, _ := tl.agent.Do(ctx, http.MethodGet, "/v1/status", "", nil)
	t.Logf("status %v", r)
	t.Logf("enroll %v", tl.post(ctx, t, "/v1/enroll", "k1", map[string]any{"card": "barcode:2012345678903"}))
	t.Logf("checkout %v", tl.post(ctx, t, "/v1/checkout", "k2", map[string]any{"card": "barcode:2012345678903", "basket": map[string]any{"currency": "EUR", "lines": []any{map[string]any{"sku": "a", "quantity": 1, "amount": 1000}}}}))
	tl.scan(t, "2012345678903")
	time.Sleep(time.Second)
	r, _ = tl.agent.Do(ctx, http.MethodGet, "/v1/session", "", nil)
	t.Logf("session %v", r)
	t.Logf("jobs %d", len(tl.printer.Jobs()))
	t.Log(tl.agent.Proc.Output())
}
