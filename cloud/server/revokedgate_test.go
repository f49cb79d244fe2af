package server_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
)

// countingLedger counts the batches handed to Apply.
type countingLedger struct {
	*sqlstore.Store
	applies atomic.Int64
}

func (l *countingLedger) Apply(ctx context.Context, b cloud.Batch) (cloud.Applied, error) {
	l.applies.Add(1)
	return l.Store.Apply(ctx, b)
}

// TestRevokedTerminalsBatchNeverReachesTheLedger defends invariant 6 ("nothing
// from a revoked terminal changes the ledger") at the server, where issue 3
// puts it: ingest checks the key status itself, after the signature, and
// refuses a revoked terminal's batch with terminal_revoked before it hands
// anything to cloud.Ledger. The server fronts any Ledger; it must not lean on
// the ledger's own status check (sqlstore's, inside its transaction, is the
// second line for a revocation racing the apply).
func TestRevokedTerminalsBatchNeverReachesTheLedger(t *testing.T) {
	store := openTestLedger(t)
	cl := &countingLedger{Store: store}
	ts := newTestServerWith(t, store, func(s *server.Server) { s.Ledger = cl })
	tm := enroll(t, ts, "S1", "T1")
	if err := ts.ledger.RevokeTerminal(context.Background(), tm.id, ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	status, h, body := post(t, ts, tm.seal(t, 3).Bytes)
	wantProblem(t, status, h, body, http.StatusForbidden, server.CodeTerminalRevoked)
	if n := cl.applies.Load(); n != 0 {
		t.Errorf("a revoked terminal's batch was handed to the ledger %d time(s); the server must refuse it before Apply", n)
	}
	if wm, _, err := ts.ledger.Watermark(context.Background(), tm.id, 1); err != nil || wm != 0 {
		t.Errorf("watermark of the revoked terminal: %d, %v; want 0", wm, err)
	}
}
