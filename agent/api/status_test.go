package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/agenttest"
)

// /v1/status shows the journal's own count of ops the cloud has not
// acknowledged, at once, not the uplink's lazily refreshed figure (here a
// fake uplink that always says 0): the offline banner's backlog is what a
// cashier reads to know nothing is lost (invariant 2).
func TestStatusBacklogIsTheJournalsUnackedCount(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	h.Uplink.Set(agent.SyncState{Online: false, BacklogOps: 0})
	known(t, h, cardA, 100, "Silver", time.Now())
	backlog := func() agent.SyncState {
		t.Helper()
		var st agent.Status
		if code, body := h.Get(t, "/v1/status", &st); code != 200 {
			t.Fatalf("status: %d %s", code, body)
		}
		return st.Sync
	}
	if got := backlog().BacklogOps; got != 0 {
		t.Fatalf("backlog of an empty journal: got %d, want 0", got)
	}
	start := time.Now()
	for i := range 3 {
		if code, body := h.Post(t, "/v1/checkout", fmt.Sprintf("k%d", i), map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 250)}, nil); code != 200 {
			t.Fatalf("checkout %d: %d %s", i, code, body)
		}
	}
	if got := backlog(); got.BacklogOps != 3 || got.OldestOp.Before(start.Add(-time.Second)) {
		t.Fatalf("backlog after 3 checkouts: got %d ops, oldest %v; want 3, after %v", got.BacklogOps, got.OldestOp, start)
	}
	if err := h.J.MarkAcked(context.Background(), 1, 2); err != nil {
		t.Fatal(err)
	}
	if got := backlog().BacklogOps; got != 1 {
		t.Fatalf("backlog after the cloud acknowledged 2 of 3: got %d, want 1", got)
	}
}
