package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

var _ server.Ledger = (*sqlstore.Store)(nil)

const (
	testAdminToken = "0123456789abcdef0123456789abcdef"
	testProgram    = "test-program"
)

// testServer is a real server on 127.0.0.1:0 over a real SQLite ledger in t.TempDir().
type testServer struct {
	*server.Server
	ledger *sqlstore.Store
	url    string
	clock  *testClock
	logs   *syncbuf.Buffer
}

// testClock is a settable clock safe to read from handlers.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// backend opens a fresh, real ledger for a test; storetest checks its
// conservation when the test ends.
type backend struct {
	name string
	open func(testing.TB) *sqlstore.Store
}

var backends = []backend{
	{"sqlite", func(t testing.TB) *sqlstore.Store { return storetest.OpenSQLite(t, quietLedger) }},
	{"postgres", func(t testing.TB) *sqlstore.Store { return storetest.OpenPostgres(t, quietLedger) }},
}

var quietLedger = sqlstore.Options{Logger: slog.New(slog.DiscardHandler)}

// forEachBackend runs f against SQLite and PostgreSQL (skipped without
// TILLPOINT_TEST_POSTGRES).
func forEachBackend(t *testing.T, f func(t *testing.T, open func(testing.TB) *sqlstore.Store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.open) })
	}
}

// openTestLedger opens a real SQLite ledger in t.TempDir().
func openTestLedger(t testing.TB) *sqlstore.Store { return backends[0].open(t) }

func newTestServer(t testing.TB, configure ...func(*server.Server)) *testServer {
	t.Helper()
	return newTestServerWith(t, openTestLedger(t), configure...)
}

// newTestServerWith serves ledger on 127.0.0.1:0.
func newTestServerWith(t testing.TB, ledger *sqlstore.Store, configure ...func(*server.Server)) *testServer {
	t.Helper()
	key, _, err := server.LoadOrCreateKey(filepath.Join(t.TempDir(), "cloud.key"))
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(ledger, key, testProgram)
	s.Addr = "127.0.0.1:0"
	s.AdminToken = []byte(testAdminToken)
	clock := &testClock{}
	clock.ns.Store(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixNano())
	s.Now = clock.Now
	logs := &syncbuf.Buffer{}
	s.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, f := range configure {
		f(s)
	}
	if err := s.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() && os.Getenv("TILLPOINT_TEST_LOGS") != "" {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &testServer{Server: s, ledger: ledger, url: s.URL(), clock: clock, logs: logs}
}

// do sends a request and returns the status, headers and body.
func do(t testing.TB, method, url, contentType, auth string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return send(t, req)
}

func send(t testing.TB, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// wantProblem checks that a response is the problem document for code.
func wantProblem(t testing.TB, status int, h http.Header, body []byte, wantStatus int, wantCode string) server.Problem {
	t.Helper()
	var p server.Problem
	if ct := h.Get("Content-Type"); ct != server.ProblemContentType {
		t.Fatalf("content type %q, want %q (status %d, body %q)", ct, server.ProblemContentType, status, body)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if status != wantStatus || p.Code != wantCode || p.Status != wantStatus {
		t.Fatalf("got %d %s (status member %d), want %d %s; detail %q", status, p.Code, p.Status, wantStatus, wantCode, p.Detail)
	}
	return p
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// enrollBody is a valid enrollment request for code with a fresh key.
func enrollBody(t testing.TB, code string) ([]byte, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return mustJSON(t, batch.EnrollRequest{Code: code, PublicKey: pub, Proof: ed25519.Sign(priv, batch.EnrollProofMessage(code, pub))}), priv
}

func createCode(t testing.TB, ts *testServer, store, terminal string, ttl int64) string {
	t.Helper()
	status, _, body := do(t, "POST", ts.url+"/v1/admin/enroll-codes", "application/json", "Bearer "+testAdminToken,
		mustJSON(t, server.EnrollCodeRequest{Store: store, Terminal: terminal, TTLSeconds: ttl}))
	if status != http.StatusCreated {
		t.Fatalf("create code: %d %s", status, body)
	}
	var r server.EnrollCodeResponse
	if err := json.Unmarshal(body, &r); err != nil || r.Code == "" {
		t.Fatalf("create code reply %s: %v", body, err)
	}
	return r.Code
}

// terminal is an enrolled terminal of a test: its signer and its journal position.
type terminal struct {
	id, store string
	key       ed25519.PrivateKey
	signer    *batch.Signer
	epoch     uint32
	next      uint64 // the next sequence to seal
	prev      batch.Hash
	card      loyalty.CardHash
	// cards > 1 spreads the ops over that many cards instead of card.
	cards int
}

// enroll enrolls a terminal over HTTP and returns it.
func enroll(t testing.TB, ts *testServer, store, id string) *terminal {
	t.Helper()
	code := createCode(t, ts, store, id, 0)
	body, key := enrollBody(t, code)
	if status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body); status != http.StatusCreated {
		t.Fatalf("enroll %s: %d %s", id, status, reply)
	}
	signer, err := batch.NewSigner(id, testProgram, key)
	if err != nil {
		t.Fatal(err)
	}
	var card loyalty.CardHash
	copy(card[:], fmt.Sprintf("card-of-%s-%s", store, id))
	return &terminal{id: id, store: store, key: key, signer: signer, epoch: 1, next: 1, card: card}
}

// ops returns n earns of 10 points each from seq on.
func (tm *terminal) ops(t testing.TB, seq uint64, n int) []loyalty.Op {
	t.Helper()
	ops := make([]loyalty.Op, n)
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	for i := range ops {
		id, err := loyalty.NewOpID(at, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ops[i] = loyalty.Op{
			ID: id, Kind: loyalty.OpEarn, Store: tm.store, Terminal: tm.id, Epoch: tm.epoch, Seq: seq + uint64(i),
			WallTime: at, HLC: loyalty.HLC(uint64(at.UnixMilli()) << 16), Card: tm.cardFor(seq + uint64(i)), Points: 10,
			Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "sku-1", Quantity: 1, Amount: 1000}}},
		}
	}
	return ops
}

// cardFor returns the card of the op at seq.
func (tm *terminal) cardFor(seq uint64) loyalty.CardHash {
	if tm.cards <= 1 {
		return tm.card
	}
	c := tm.card
	c[31] = byte(seq % uint64(tm.cards))
	c[30] = byte(seq % uint64(tm.cards) >> 8)
	return c
}

// seal seals the next n ops and advances the terminal's position as if
// the batch were acknowledged.
func (tm *terminal) seal(t testing.TB, n int) batch.Sealed {
	t.Helper()
	sealed := tm.sealAt(t, tm.next, n, tm.prev)
	tm.next += uint64(n)
	tm.prev = sealed.Hash
	return sealed
}

// sealAt seals n fresh ops from seq with prev as the previous batch's hash.
func (tm *terminal) sealAt(t testing.TB, seq uint64, n int, prev batch.Hash) batch.Sealed {
	t.Helper()
	b := &batch.Batch{Terminal: tm.id, Epoch: tm.epoch, First: seq, Last: seq + uint64(n) - 1, Prev: prev, Ops: tm.ops(t, seq, n)}
	sealed, err := tm.signer.SealBatch(b)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return sealed
}

// post sends a sealed batch.
func post(t testing.TB, ts *testServer, body []byte) (int, http.Header, []byte) {
	t.Helper()
	return do(t, "POST", ts.url+"/v1/batches", batch.ContentType, "", body)
}

// openAck verifies and decodes an ack from the server.
func openAck(t testing.TB, ts *testServer, h http.Header, body []byte) *batch.Ack {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != batch.ContentType {
		t.Fatalf("ack content type %q, want %q (body %q)", ct, batch.ContentType, body)
	}
	ack, err := batch.OpenAck(body, testProgram, ts.Key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("open ack: %v", err)
	}
	return ack
}

// ledgerState is what must not change when a request is refused.
type ledgerState struct {
	report    cloud.CheckReport
	watermark uint64
}

func stateOf(t testing.TB, ts *testServer, tm *terminal) ledgerState {
	t.Helper()
	report, err := ts.ledger.Check(context.Background())
	if err != nil {
		t.Fatalf("ledger check: %v (%v)", err, report.Problems)
	}
	wm, _, err := ts.ledger.Watermark(context.Background(), tm.id, tm.epoch)
	if err != nil {
		t.Fatal(err)
	}
	report.Problems = nil
	return ledgerState{report: report, watermark: wm}
}
