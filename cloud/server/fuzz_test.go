package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// fuzzTerminalSeed makes the fuzz terminal's key the same in every run,
// so the committed corpus's validly signed batches stay valid.
var fuzzTerminalSeed = bytes.Repeat([]byte{7}, ed25519.SeedSize)

// fuzzBatch seals a valid batch of n earns from seq for the fuzz terminal.
func fuzzBatch(tb testing.TB, seq uint64, n int) []byte {
	tb.Helper()
	signer, err := batch.NewSigner("FT1", testProgram, ed25519.NewKeyFromSeed(fuzzTerminalSeed))
	if err != nil {
		tb.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	ops := make([]loyalty.Op, n)
	for i := range ops {
		var id loyalty.OpID
		id[0], id[6], id[8], id[15] = 1, 0x70, 0x80, byte(seq)+byte(i)
		ops[i] = loyalty.Op{ID: id, Kind: loyalty.OpEarn, Store: "S1", Terminal: "FT1", Epoch: 1, Seq: seq + uint64(i),
			WallTime: at, Card: loyalty.CardHash{1, 2, 3}, Points: 5,
			Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "x", Quantity: 1, Amount: 500}}}}
	}
	s, err := signer.SealBatch(&batch.Batch{Terminal: "FT1", Epoch: 1, First: seq, Last: seq + uint64(n) - 1, Ops: ops})
	if err != nil {
		tb.Fatal(err)
	}
	return s.Bytes
}

// FuzzBatchEndpoint throws arbitrary bodies at POST /v1/batches: the
// server must answer every one with a 2xx or 4xx (never a 5xx or a panic),
// and a refused body must leave the ledger as it was.
func FuzzBatchEndpoint(f *testing.F) {
	ctx := context.Background()
	ledger, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(f.TempDir(), "ledger.db"), sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer ledger.Close()
	key, _, err := server.LoadOrCreateKey(filepath.Join(f.TempDir(), "cloud.key"))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if err := ledger.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "FUZZ", Store: "S1", Terminal: "FT1", Expires: now.Add(time.Hour), Created: now}); err != nil {
		f.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(fuzzTerminalSeed).Public().(ed25519.PublicKey)
	if _, err := ledger.Enroll(ctx, "FUZZ", cloud.TerminalKey{PublicKey: pub, KeyID: batch.Fingerprint(pub)}, now); err != nil {
		f.Fatal(err)
	}
	s := server.New(ledger, key, testProgram)
	s.Addr = "127.0.0.1:0"
	s.Now = func() time.Time { return now }
	if err := s.Open(); err != nil { // Open validates and makes the signer; the listener is unused
		f.Fatal(err)
	}
	defer s.Close(ctx)
	h := s.Handler()

	f.Add(fuzzBatch(f, 1, 3))
	f.Add(fuzzBatch(f, 4, 1))
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	f.Add([]byte("not cbor at all"))
	f.Fuzz(func(t *testing.T, body []byte) {
		wmBefore, _, err := ledger.Watermark(ctx, "FT1", 1)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("POST", "/v1/batches", bytes.NewReader(body))
		req.Header.Set("Content-Type", batch.ContentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for a %d-byte body: %s", rec.Code, len(body), rec.Body.Bytes())
		}
		wmAfter, _, err := ledger.Watermark(ctx, "FT1", 1)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusOK && wmAfter != wmBefore {
			t.Fatalf("a refused body (%d) moved the watermark from %d to %d", rec.Code, wmBefore, wmAfter)
		}
	})
}
