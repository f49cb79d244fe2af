package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// gatedLedger is the real ledger with an Apply that waits for a gate: the
// edge this test needs to hold a batch in flight.
type gatedLedger struct {
	*sqlstore.Store
	entered chan struct{}
	gate    chan struct{}
}

func (l *gatedLedger) Apply(ctx context.Context, b cloud.Batch) (cloud.Applied, error) {
	l.entered <- struct{}{}
	<-l.gate
	return l.Store.Apply(ctx, b)
}

// postHeld posts a batch in the background and returns once its Apply
// waits at the gate; the channel then gets the answer's status (0 when the
// post failed) after the gate opens.
func (l *gatedLedger) postHeld(t *testing.T, ts *testServer, body []byte) <-chan int {
	t.Helper()
	done := make(chan int, 1)
	go func() { // not post: t.Fatal belongs to the test's goroutine
		resp, err := http.Post(ts.url+"/v1/batches", batch.ContentType, bytes.NewReader(body))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case <-l.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch never reached the ledger")
	}
	return done
}

func TestBusyLedgerAnswers503WithRetryAfterAndLosesNothing(t *testing.T) {
	t.Parallel()
	store := openTestLedger(t)
	gl := &gatedLedger{Store: store, entered: make(chan struct{}, 4), gate: make(chan struct{})}
	ts := newTestServerWith(t, store, func(s *server.Server) {
		s.Ledger = gl
		s.MaxConcurrentApply = 1
		s.ApplyQueueWait = 50 * time.Millisecond
	})
	a := enroll(t, ts, "S1", "T1")
	b := enroll(t, ts, "S1", "T2")
	first, second := a.seal(t, 3), b.seal(t, 3)

	done := gl.postHeld(t, ts, first.Bytes)
	status, h, body := post(t, ts, second.Bytes)
	wantProblem(t, status, h, body, http.StatusServiceUnavailable, server.CodeUnavailable)
	if h.Get("Retry-After") == "" {
		t.Errorf("a busy 503 without Retry-After")
	}
	close(gl.gate)
	if status := <-done; status != http.StatusOK {
		t.Fatalf("the batch in flight: %d, want 200", status)
	}
	if status, _, body := post(t, ts, second.Bytes); status != http.StatusOK {
		t.Fatalf("the refused batch, resent: %d %s, want 200", status, body)
	}
	if wm, _, err := store.Watermark(context.Background(), "T2", 1); err != nil || wm != 3 {
		t.Errorf("T2 watermark %d (err %v), want 3", wm, err)
	}
}

// panickyLedger panics on the terminal lookup: a bug somewhere below the
// server must cost one request, not the process.
type panickyLedger struct{ *sqlstore.Store }

func (panickyLedger) Terminal(context.Context, string) (cloud.Terminal, error) {
	panic("boom")
}

func TestAPanicBelowTheServerCostsOneRequest(t *testing.T) {
	t.Parallel()
	store := openTestLedger(t)
	ts := newTestServerWith(t, store, func(s *server.Server) { s.Ledger = panickyLedger{store} })
	a := &terminal{id: "T1", store: "S1", epoch: 1, next: 1}
	a.key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	a.signer = mustSigner(t, "T1", testProgram, a)
	status, h, body := post(t, ts, a.seal(t, 1).Bytes)
	wantProblem(t, status, h, body, http.StatusInternalServerError, server.CodeInternal)
	if status, _, body := do(t, "GET", ts.url+"/healthz", "", "", nil); status != http.StatusOK {
		t.Fatalf("after a panic: healthz %d %s, want 200", status, body)
	}
	if !strings.Contains(ts.logs.String(), "handler panicked") {
		t.Errorf("the panic was not logged")
	}
}

// applyPanicsOnce is the real ledger with an Apply that panics the
// first time.
type applyPanicsOnce struct {
	*sqlstore.Store
	panicked bool
}

func (l *applyPanicsOnce) Apply(ctx context.Context, b cloud.Batch) (cloud.Applied, error) {
	if !l.panicked {
		l.panicked = true
		panic("boom")
	}
	return l.Store.Apply(ctx, b)
}

// A panic inside Apply costs its request, not its apply slot: with one
// slot, a slot kept by the panicked request would answer every later
// batch 503 busy until the process restarts.
func TestAPanicInApplyGivesItsSlotBack(t *testing.T) {
	t.Parallel()
	store := openTestLedger(t)
	ts := newTestServerWith(t, store, func(s *server.Server) {
		s.Ledger = &applyPanicsOnce{Store: store}
		s.MaxConcurrentApply = 1
		s.ApplyQueueWait = 50 * time.Millisecond
	})
	tm := enroll(t, ts, "S1", "T1")
	sealed := tm.seal(t, 2)
	status, h, body := post(t, ts, sealed.Bytes)
	wantProblem(t, status, h, body, http.StatusInternalServerError, server.CodeInternal)
	if status, _, body := post(t, ts, sealed.Bytes); status != http.StatusOK {
		t.Fatalf("the batch sent again after the panic: %d %s, want 200", status, body)
	}
}

// TestLedgerThatDoesNotAnswerIs503AndLoggedOnce: while the ledger's
// database does not answer (here: closed under the server), a request
// that fails on it is that outage, not a server bug: 503 with
// Retry-After, which the till waits out, and one log line however many
// requests fail.
func TestLedgerThatDoesNotAnswerIs503AndLoggedOnce(t *testing.T) {
	t.Parallel()
	ledger, err := sqlstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerWith(t, ledger)
	tm := enroll(t, ts, "S1", "T1")
	sealed := tm.seal(t, 3)
	ledger.Close()
	for range 3 {
		status, h, body := post(t, ts, sealed.Bytes)
		wantProblem(t, status, h, body, http.StatusServiceUnavailable, server.CodeUnavailable)
		if h.Get("Retry-After") == "" {
			t.Errorf("a 503 without Retry-After")
		}
	}
	logs := ts.logs.String()
	if n := strings.Count(logs, "does not answer"); n != 1 || strings.Contains(logs, "request failed") {
		t.Errorf("%d lines saying the database does not answer, want 1, and no request failures; log:\n%s", n, logs)
	}
}
