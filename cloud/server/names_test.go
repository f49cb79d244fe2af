package server_test

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// Invariant 6 for text PostgreSQL cannot store: an op with a NUL in its
// member is rejected as invalid on its own, on both backends (it was a 500
// from PostgreSQL, which the till would have resent forever), no balance
// moves, and the terminal's next batch is applied.
func TestNULInAnOpIsRefusedNotA500(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ts := newTestServerWith(t, open(t))
		tm := enroll(t, ts, "S1", "T1")
		before := stateOf(t, ts, tm)
		at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
		id, err := loyalty.NewOpID(at, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		op := loyalty.Op{ID: id, Kind: loyalty.OpAdjust, Store: "S1", Terminal: "T1", Epoch: 1, Seq: 1, WallTime: at,
			Member: "m\x00x", Points: 5, Reason: "goodwill"}
		sealed, err := tm.signer.SealBatch(&batch.Batch{Terminal: "T1", Epoch: 1, First: 1, Last: 1, Ops: []loyalty.Op{op}})
		if err != nil {
			t.Fatal(err)
		}
		status, h, body := post(t, ts, sealed.Bytes)
		if status != http.StatusOK {
			t.Fatalf("post: %d %s; want 200 with the op rejected", status, body)
		}
		ack := openAck(t, ts, h, body)
		if len(ack.Results) != 1 || ack.Results[0].Outcome != batch.Rejected || ack.Results[0].Reason != batch.RejectInvalid {
			t.Errorf("ack results %+v, want the op rejected as invalid", ack.Results)
		}
		after := stateOf(t, ts, tm)
		if after.watermark != 1 || fmt.Sprint(after.report) != fmt.Sprint(before.report) {
			t.Errorf("ledger after: %+v, want watermark 1 and no balance moved (%+v)", after, before)
		}
		tm.next, tm.prev = 2, sealed.Hash
		if status, _, body := post(t, ts, tm.seal(t, 3).Bytes); status != http.StatusOK {
			t.Errorf("the next good batch: %d %s", status, body)
		}
	})
}

// Names with control characters never reach the ledger from the admin
// API: they are refused with a 4xx that says why.
func TestAdminNamesWithControlCharactersAreRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ts := newTestServerWith(t, open(t))
		for _, req := range []struct{ store, terminal string }{{"S\x001", "T1"}, {"S1", "T\x001"}, {"S1", "T\n1"}} {
			status, h, body := do(t, "POST", ts.url+"/v1/admin/enroll-codes", "application/json", "Bearer "+testAdminToken,
				mustJSON(t, map[string]string{"store": req.store, "terminal": req.terminal}))
			wantProblem(t, status, h, body, http.StatusBadRequest, "invalid_request")
		}
		status, h, body := do(t, "POST", ts.url+"/v1/admin/terminals/"+url.PathEscape("T\x001")+"/revoke", "", "Bearer "+testAdminToken, nil)
		wantProblem(t, status, h, body, http.StatusNotFound, "not_found")
		status, h, body = do(t, "POST", ts.url+"/v1/admin/stores/"+url.PathEscape("S\x001")+"/gossip-key", "application/json", "Bearer "+testAdminToken, []byte(`{}`))
		wantProblem(t, status, h, body, http.StatusNotFound, "not_found")
	})
}
