package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/agent/api"
)

// FuzzPostBodies: whatever a POS app sends, the API answers 200 or a
// problem document with a message for the cashier; it never answers 500.
func FuzzPostBodies(f *testing.F) {
	f.Add(uint8(0), []byte(`{"card":"barcode:2012345678903","basket":{"currency":"EUR","lines":[{"sku":"milk","category":"dairy","quantity":1,"amount":1250}]}}`))
	f.Add(uint8(1), []byte(`{"card":"nfc:04A1B2C3D4E5F6","reward":"coffee"}`))
	f.Add(uint8(2), []byte(`{"op":"0191c2a4-7b3e-7c00-8000-000000000000"}`))
	f.Add(uint8(3), []byte(`{"card":"app:ABCD-1234"}`))
	f.Add(uint8(4), []byte(`{"basket":{"currency":"EUR","lines":[{"sku":"x","quantity":-3,"amount":-99999999999}]}}`))
	f.Add(uint8(0), []byte(`{"basket":{"currency":"EUR","lines":[]}} trailing`))
	h := agenttest.Start(f, agenttest.Options{})
	handler := h.Server.Handler()
	paths := []string{"/v1/checkout", "/v1/redeem", "/v1/void", "/v1/enroll", "/v1/session", "/v1/quote"}
	n := 0
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		n++
		path := paths[int(route)%len(paths)]
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Idempotency-Key", "fuzz-"+strconv.Itoa(n))
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			return
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %q: got %d %s, want 200 or a 4xx problem", path, body, rec.Code, rec.Body)
		}
		var p api.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Detail == "" || p.Status != rec.Code {
			t.Fatalf("%s %q: got %d %s, want a problem document with a detail", path, body, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("content type %q", ct)
		}
	})
}
