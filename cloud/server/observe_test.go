package server_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
)

// recorder is an Observer that keeps what it hears.
type recorder struct {
	mu       sync.Mutex
	requests []string // "route status outcome"
	ops      map[cloud.Status]int
}

func (r *recorder) Request(route string, status int, outcome string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if took <= 0 {
		outcome += " (no duration)"
	}
	r.requests = append(r.requests, fmt.Sprintf("%s %d %s", route, status, outcome))
}

func (r *recorder) Ops(results []cloud.OpResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, res := range results {
		r.ops[res.Status]++
	}
}

func (r *recorder) heard() ([]string, map[cloud.Status]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests), maps.Clone(r.ops)
}

// TestObserverHearsEachRequestsOutcomeAndEachAppliedOp defends what the
// operator's metrics are made of: every request is reported once with the
// route it matched and its outcome (an ack's status, a refusal's problem
// code), and the ops of a batch are counted once, not again when the same
// batch is acknowledged as a duplicate.
func TestObserverHearsEachRequestsOutcomeAndEachAppliedOp(t *testing.T) {
	t.Parallel()
	rec := &recorder{ops: map[cloud.Status]int{}}
	ts := newTestServer(t, func(s *server.Server) {
		s.Observer = rec
		s.Now = time.Now // a fixed clock makes every request take no time
	})
	tm := enroll(t, ts, "S1", "T1")
	sealed := tm.seal(t, 3)
	for range 2 { // applied, then the same bytes again: duplicate
		if status, _, body := post(t, ts, sealed.Bytes); status != http.StatusOK {
			t.Fatalf("post: %d %s", status, body)
		}
	}
	gap := tm.sealAt(t, tm.next+5, 1, tm.prev)
	post(t, ts, gap.Bytes)
	forged := tm.sealAt(t, tm.next, 1, tm.prev).Bytes
	forged[len(forged)-1] ^= 0x01
	post(t, ts, forged)
	do(t, "GET", ts.url+"/v2/nothing", "", "", nil)

	requests, ops := rec.heard()
	want := []string{
		"POST /v1/admin/enroll-codes 201 ok",
		"POST /v1/enroll 201 ok",
		"POST /v1/batches 200 applied",
		"POST /v1/batches 200 duplicate",
		"POST /v1/batches 409 gap",
		"POST /v1/batches 403 " + server.CodeBadSignature,
		"/ 404 " + server.CodeNotFound,
	}
	if !slices.Equal(requests, want) {
		t.Errorf("requests heard:\n%q\nwant\n%q", requests, want)
	}
	if ops[cloud.StatusApplied] != 3 || len(ops) != 1 {
		t.Errorf("ops heard %v, want the batch's 3 applied once", ops)
	}
}

// TestMetricsAreServedOnlyWithTheAdminToken: the counts of a cloud that
// serves the internet are for its operator.
func TestMetricsAreServedOnlyWithTheAdminToken(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, func(s *server.Server) {
		s.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "tillpoint_up 1") })
	})
	status, h, body := do(t, "GET", ts.url+"/metrics", "", "", nil)
	wantProblem(t, status, h, body, http.StatusUnauthorized, server.CodeUnauthorized)
	status, _, body = do(t, "GET", ts.url+"/metrics", "", "Bearer "+testAdminToken, nil)
	if status != http.StatusOK || string(body) != "tillpoint_up 1\n" {
		t.Errorf("metrics with the token: %d %q, want 200 and the handler's text", status, body)
	}

	without := newTestServer(t)
	status, h, body = do(t, "GET", without.url+"/metrics", "", "Bearer "+testAdminToken, nil)
	wantProblem(t, status, h, body, http.StatusNotFound, server.CodeNotFound)
}
