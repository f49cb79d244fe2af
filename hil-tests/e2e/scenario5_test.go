package e2e_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// opReply is the part of an op reply the scenarios read.
type opReply struct {
	OpID     string `json:"op_id"`
	Kind     string `json:"kind"`
	Points   int64  `json:"points"`
	Balance  int64  `json:"balance"`
	Tier     string `json:"tier"`
	Offline  bool   `json:"offline"`
	Printed  bool   `json:"printed"`
	Replayed bool   `json:"replayed"`
	Member   struct {
		Known bool   `json:"known"`
		ID    string `json:"id"`
	} `json:"member"`
}

// Scenario 5: kill -9 of the agent while POS apps are posting sign-ups
// and checkouts. Every op the agent acknowledged is in the journal after
// the restart (invariant 1); every request retried with its
// Idempotency-Key, acknowledged or cut off by the crash, ends as exactly
// one op (nothing lost, nothing doubled); the journal verifies; and once
// the restarted till has synced, the cloud holds each of its ops exactly
// once (invariant 2).
func TestScenario5_KillDashNineLosesAndDoublesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStore(t, tillOpts{})
	tl := s.tills[0]
	requireRules(ctx, t, tl)

	type req struct {
		key, path, card string
		body            map[string]any
	}
	var (
		mu      sync.Mutex
		acked   = map[string]string{} // key -> op id
		unknown []req                 // cut off by the crash
		reqs    = map[string]req{}
	)
	const workers, killAfter = 4, 40
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				// A new member signs up, then buys: enroll and checkout in turn.
				card := fmt.Sprintf("barcode:K9W%dN%04d", w, i/2)
				rq := req{key: fmt.Sprintf("k9-%d-%d", w, i), path: "/v1/enroll", card: card, body: map[string]any{"card": card}}
				if i%2 == 1 {
					rq.path, rq.body = "/v1/checkout", map[string]any{"card": card, "basket": basket()}
				}
				mu.Lock()
				reqs[rq.key] = rq
				mu.Unlock()
				r, err := tl.agent.Do(ctx, "POST", rq.path, rq.key, rq.body)
				mu.Lock()
				if err != nil || r.Status >= 500 {
					unknown = append(unknown, rq)
					mu.Unlock()
					return
				}
				var o opReply
				if r.Status != 200 || r.Decode(&o) != nil || o.OpID == "" {
					mu.Unlock()
					t.Errorf("%s %s before the crash: got %v, want 200 with an op id", rq.path, rq.key, r)
					return
				}
				acked[rq.key] = o.OpID
				n := len(acked)
				mu.Unlock()
				if n == killAfter {
					close(killed)
				}
				select {
				case <-ctx.Done():
					return
				default:
				}
			}
		}()
	}
	select {
	case <-killed:
	case <-ctx.Done():
		t.Fatalf("only %d ops acknowledged before the deadline", len(acked))
	}
	tl.agent.Proc.Kill() // SIGKILL to the agent, mid-request
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("killed with %d ops acknowledged and %d requests cut off", len(acked), len(unknown))

	tl.agent.Restart(t)
	// The POS retries what it did not get an answer for, and (to prove
	// idempotency survived) what it did.
	final := map[string]string{} // key -> op id
	retry := func(rq req) {
		r := tl.post(ctx, t, rq.path, rq.key, rq.body)
		var o opReply
		if r.Status != 200 || r.Decode(&o) != nil {
			t.Errorf("retry of %s %s after restart: got %v, want 200", rq.path, rq.key, r)
			return
		}
		if id, ok := acked[rq.key]; ok && (o.OpID != id || !o.Replayed) {
			t.Errorf("retry of acknowledged %s: got op %s replayed=%v, want op %s replayed", rq.key, o.OpID, o.Replayed, id)
		}
		final[rq.key] = o.OpID
	}
	for _, rq := range unknown {
		retry(rq)
	}
	for key := range acked {
		retry(reqs[key])
	}

	ops := exportJournal(t, tl)
	byID := map[string]int{}
	perCard := map[string]int{}
	for _, o := range ops {
		byID[o.ID]++
		if o.Kind == "enroll" {
			perCard[o.Card]++
		}
	}
	owner := map[string]string{}
	for key, id := range final {
		if byID[id] != 1 {
			t.Errorf("op %s of request %s: %d times in the journal, want 1", id, key, byID[id])
		}
		if other, dup := owner[id]; dup {
			t.Errorf("requests %s and %s got the same op %s", other, key, id)
		}
		owner[id] = key
	}
	for key, id := range acked {
		if final[key] != id {
			t.Errorf("acknowledged op %s (%s): after kill -9 the request maps to %q", id, key, final[key])
		}
	}
	if len(ops) != len(final) {
		t.Errorf("journal after kill -9: got %d ops, want %d (one per request: %d acknowledged + %d cut off)", len(ops), len(final), len(acked), len(unknown))
	}
	for card, n := range perCard {
		if n != 1 {
			t.Errorf("card %s: enrolled %d times in the journal, want once", card, n)
		}
	}
	verifyJournal(t, tl)

	waitSynced(ctx, t, s, 30*time.Second)
	applied := s.cloud.QueryInt(t, `SELECT COUNT(*) FROM ops WHERE terminal = ? AND status = 1`, tl.term.ID)
	distinct := s.cloud.QueryInt(t, `SELECT COUNT(DISTINCT id) FROM ops WHERE terminal = ? AND status = 1`, tl.term.ID)
	if applied != int64(len(ops)) || distinct != applied {
		t.Errorf("cloud after the restarted till synced: %d ops applied (%d distinct), want %d, each once", applied, distinct, len(ops))
	}
	s.cloud.Check(t)
}
