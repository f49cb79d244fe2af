package uplink_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// TestAckForAnotherBatchAcknowledgesNothing defends invariant 2 (every op
// reaches the cloud exactly once): the uplink marks ops acknowledged only
// on a signed ack that names the hash of the batch it sent. An ack signed
// by the cloud, for this terminal and epoch, with a watermark that covers
// the batch, but for another batch (a replayed or misrouted answer, a
// journal restored with other ops at those sequences) proves nothing about
// these ops: trusting its watermark would drop them from the outbox
// unsent.
func TestAckForAnotherBatchAcknowledgesNothing(t *testing.T) {
	var f *fixture
	var forged atomic.Int64 // acks for another batch served
	f = newFixture(t, 5, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes())
				return
			}
			a, err := batch.OpenAck(rec.Body.Bytes(), f.cloud.Program(), f.cloud.Public())
			if err != nil {
				t.Errorf("stub ack: %v", err)
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			a.BatchHash[0] ^= 0xff // the same ack, for another batch
			sealed, err := f.cloud.SealAck(a)
			if err != nil {
				t.Errorf("seal ack: %v", err)
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", batch.ContentType)
			w.WriteHeader(http.StatusOK)
			w.Write(sealed)
			forged.Add(1)
		})
	})
	u := f.uplink(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := u.Sync(ctx); err == nil {
		t.Fatal("sync succeeded on acks that name another batch")
	}
	if forged.Load() == 0 {
		t.Fatal("no ack reached the uplink before the deadline; the test proves nothing")
	}
	if e, s, _ := f.j.Acked(context.Background()); e != 0 || s != 0 {
		t.Errorf("journal watermark %d/%d after acks for another batch, want 0/0: ops marked acknowledged without proof", e, s)
	}
	if sealed, _ := f.j.Sealed(context.Background()); len(sealed) == 0 {
		t.Error("the outbox is empty: the sealed batch was dropped on an ack for another batch")
	}
}

// TestBackoffDoublesAfterEachFailure defends issue 3's "exponential backoff
// with jitter": after the k-th consecutive failure the uplink waits a time
// drawn from [d/2, d] with d = MinBackoff·2^(k-1), capped at MaxBackoff, so
// a cloud that is down is not hammered by every till at MinBackoff. The
// clock is fixed, so State's NextAttempt minus LastErrorAt is exactly the
// wait chosen; the handler reads it as the next attempt arrives.
func TestBackoffDoublesAfterEachFailure(t *testing.T) {
	const (
		minBackoff = time.Millisecond
		maxBackoff = 64 * time.Millisecond
		attempts   = 10
	)
	var (
		up    atomic.Pointer[uplink.Uplink]
		mu    sync.Mutex
		waits []time.Duration
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := newFixture(t, 3, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u := up.Load(); u != nil {
				if st := u.State(); !st.LastErrorAt.IsZero() {
					mu.Lock()
					waits = append(waits, st.NextAttempt.Sub(st.LastErrorAt))
					if len(waits) == attempts {
						cancel()
					}
					mu.Unlock()
				}
			}
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("down"))
		})
	})
	u := f.uplink(t, func(c *uplink.Config) {
		c.MinBackoff, c.MaxBackoff = minBackoff, maxBackoff
		c.Now = func() time.Time { return t0 }
	})
	up.Store(u)
	if err := u.Sync(ctx); err == nil {
		t.Fatal("sync succeeded against a cloud that answers 500")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) < attempts {
		t.Fatalf("only %d retries seen: %v", len(waits), waits)
	}
	for i, got := range waits[:attempts] {
		d := min(minBackoff<<i, maxBackoff) // after failure i+1
		if got < d/2 || got > d {
			t.Errorf("wait after failure %d: %v, want within [%v, %v] (MinBackoff doubled per failure, capped at MaxBackoff); all waits %v", i+1, got, d/2, d, waits)
		}
	}
}

// TestRetryAfterAFailureSendsTheIdenticalBytes defends issue 3's "the
// uplink seals a batch once and stores its exact bytes; a retry sends the
// identical bytes": the cloud answers 503, the till records more sales
// and its rules change, the uplink is restarted and retried: the batch
// goes again as it was first sealed (cut again, it would take the new
// sales in and name the new rules), and the new sales follow in a batch of
// their own.
func TestRetryAfterAFailureSendsTheIdenticalBytes(t *testing.T) {
	var (
		mu        sync.Mutex
		restarted bool
		before    [][]byte // posts before the restart, all refused
		after     [][]byte // posts after it; the first refused
	)
	f := newFixture(t, 5, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("read post: %v", err)
				return
			}
			mu.Lock()
			refuse := !restarted || len(after) == 0
			if restarted {
				after = append(after, body)
			} else {
				before = append(before, body)
			}
			mu.Unlock()
			if refuse {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.ServeHTTP(w, r)
		})
	})
	short, stop := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer stop()
	if err := f.uplink(t, nil).Sync(short); err == nil {
		t.Fatal("sync succeeded while the cloud answers 503")
	}
	ops := append(f.ops, appendOps(t, f.j, earns(100, 5, 7))...)
	mu.Lock()
	restarted = true
	mu.Unlock()
	syncWithin(t, f.uplink(t, func(c *uplink.Config) { c.RulesVersion = func() uint32 { return 2 } }), 5*time.Second)
	f.ledger.check(t, ops)
	mu.Lock()
	defer mu.Unlock()
	if len(before) == 0 || len(after) < 3 {
		t.Fatalf("%d posts before the restart and %d after, want at least 1 and 3 (the batch refused, the batch applied, the new sales)", len(before), len(after))
	}
	for i, b := range append(before, after[:2]...) {
		if !bytes.Equal(b, before[0]) {
			t.Errorf("send %d of the first batch differs from its first send (%d bytes against %d): a retry cut it again", i+1, len(b), len(before[0]))
		}
	}
}

// The cloud answers the probe before a new epoch (a replay, read only) but
// fails the new epoch's first batch every time with a 500 (a bug in the
// cloud on one of its ops, a proxy in the way, a large batch timing out).
// Each failure makes the uplink forget the crossing and seal the probe
// ahead of the batch again. The probe's ack counted as a success (found
// by review): it reset the failure count, so the backoff never doubled,
// and reported the uplink online, so the agent took its redeems as online,
// outside the offline policy (invariant 4), though nothing new reached
// the cloud.
func TestE2EAProbesAnswerNeitherEndsTheBackoffNorBringsTheUplinkOnline(t *testing.T) {
	c, ctx := newCloud(t), context.Background()
	tm := c.enroll(t, "T-01")
	var (
		up      atomic.Pointer[uplink.Uplink]
		pub     atomic.Value
		refuse  atomic.Uint32 // the epoch whose batches get a 500
		mu      sync.Mutex
		refused int
		online  int // refused posts made while the uplink said online
		last    time.Time
		gaps    []time.Duration // between the refused posts
	)
	front := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if e := refuse.Load(); e != 0 {
			if b, _, err := batch.OpenBatch(body, tm.st.Program, pub.Load().(*batch.Signer).Public()); err == nil && b.Epoch == e {
				mu.Lock()
				if refused > 0 {
					st := up.Load().State()
					if st.Online {
						online++
					}
					gaps = append(gaps, time.Since(last).Round(time.Millisecond))
				}
				last = time.Now()
				refused++
				mu.Unlock()
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
		}
		forward(w, r, body, c.url)
	}))
	cfg := tm.config(t, front)
	cfg.MaxOps = 10
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 10*time.Second
	pub.Store(cfg.Signer)
	appendOps(t, tm.j, earns(0, 10, 3)) // 1/1..10
	syncWithin(t, mustUplink(t, tm.j, cfg), 20*time.Second)
	e2, err := tm.j.NewEpoch(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	appendOps(t, tm.j, earns(10, 5, 3)) // 2/1..5
	refuse.Store(e2)

	u := mustUplink(t, tm.j, cfg)
	up.Store(u)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := u.Sync(sctx); err == nil {
		t.Fatal("sync succeeded though every batch of the new epoch failed")
	}
	mu.Lock()
	defer mu.Unlock()
	// Doubling from 20 ms, the waits alone take 10+20+40+...+640 ms > 1.2 s
	// by the 8th retry: at most about 9 posts of the batch in 2 s.
	if refused > 12 {
		t.Errorf("the failing batch was posted %d times in 2 s; the time between two posts: %v", refused, gaps)
	}
	if online > 0 {
		t.Errorf("the uplink reported itself online at %d of %d retries of a batch the cloud never took", online, refused-1)
	}
	if st := u.State(); st.Backlog != 5 {
		t.Errorf("backlog %d, want 5", st.Backlog)
	}
}

// TestE2EAnIdleTillIsOnlineOnceItsProbeGetsThrough: an idle till's probe
// is all it sends; when the network comes back, its answer is what shows
// the cloud reachable again. Nothing waits behind it, so it ends the
// backoff and brings the uplink back online: otherwise the agent would
// hold every redeem to the offline policy until the next sale got through.
func TestE2EAnIdleTillIsOnlineOnceItsProbeGetsThrough(t *testing.T) {
	c := newCloud(t)
	tm := c.enroll(t, "T-01")
	var down atomic.Bool
	front := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "proxy: the cloud cannot be reached", http.StatusBadGateway)
			return
		}
		forward(w, r, nil, c.url)
	}))
	cfg := tm.config(t, front)
	cfg.IdleProbe = time.Second
	appendOps(t, tm.j, earns(0, 3, 2))
	syncWithin(t, mustUplink(t, tm.j, cfg), 20*time.Second)

	down.Store(true)
	u := mustUplink(t, tm.j, cfg) // its first idle round probes at once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u.Start(ctx)
	t.Cleanup(func() { u.Shutdown(context.Background()) })
	waitFor(t, "failed idle probe", func() bool { return !u.State().LastErrorAt.IsZero() && !u.State().Online })
	down.Store(false)
	waitFor(t, "uplink back online after the network came back", func() bool { return u.State().Online })
	if st := u.State(); st.Backlog != 0 || !st.NextAttempt.IsZero() {
		t.Errorf("after the probe got through: backlog %d, next attempt %v; want 0 and none", st.Backlog, st.NextAttempt)
	}
}

// A probe that failed and is sent again from the outbox is "the last of
// the outbox" even when ops wait behind it that are not sealed yet: a
// sale that came while an idle till's probe failed, or the new epoch's
// first batch behind a pre-epoch probe that failed before the batch was
// cut. Its replay then ends the backoff and shows the uplink online,
// though the batch behind it has not got through (and here never does):
// the agent took redeems as online (no offline cap, invariant 4) until
// that batch failed (found by review): only a probe with nothing to send
// behind it now stands for the link working.
func TestE2EAProbeWithOpsBehindItDoesNotBringTheUplinkOnline(t *testing.T) {
	for _, newEpoch := range []bool{false, true} {
		name := "idle probe, then a sale in the same epoch"
		if newEpoch {
			name = "pre-epoch probe cut fresh, then failed"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := newCloud(t)
			tm := c.enroll(t, "T-01")
			const (
				pass = iota
				down
				refuseBatches // the cloud answers probes but refuses every other batch
			)
			var (
				mode    atomic.Int32
				up      atomic.Pointer[uplink.Uplink]
				mu      sync.Mutex
				refused int
				online  int // refused batch posts made while the uplink said online
			)
			var signer atomic.Pointer[batch.Signer]
			front := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				switch mode.Load() {
				case down:
					http.Error(w, "proxy: the cloud cannot be reached", http.StatusBadGateway)
					return
				case refuseBatches:
					b, _, err := batch.OpenBatch(body, tm.st.Program, signer.Load().Public())
					var ff batch.Hash
					for i := range ff {
						ff[i] = 0xff
					}
					if err == nil && b.Prev != ff {
						mu.Lock()
						refused++
						if u := up.Load(); u != nil && u.State().Online {
							online++
						}
						mu.Unlock()
						http.Error(w, "internal error", http.StatusInternalServerError)
						return
					}
				}
				forward(w, r, body, c.url)
			}))
			cfg := tm.config(t, front)
			cfg.IdleProbe = time.Second
			cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 5*time.Second
			signer.Store(cfg.Signer)
			appendOps(t, tm.j, earns(0, 3, 2)) // 1/1..3
			syncWithin(t, mustUplink(t, tm.j, cfg), 20*time.Second)

			mode.Store(down)
			if newEpoch {
				if _, err := tm.j.NewEpoch(ctx, "test"); err != nil {
					t.Fatal(err)
				}
				appendOps(t, tm.j, earns(3, 2, 2)) // 2/1..2
			}
			u := mustUplink(t, tm.j, cfg)
			up.Store(u)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			u.Start(rctx)
			t.Cleanup(func() { u.Shutdown(context.Background()) })
			// The probe (idle, or ahead of epoch 2) fails: offline.
			waitFor(t, "failed probe", func() bool { st := u.State(); return !st.LastErrorAt.IsZero() && !st.Online })
			if !newEpoch {
				appendOps(t, tm.j, earns(3, 1, 2)) // 1/4: a sale behind the failed idle probe
				u.Notify()
			}
			// The cloud is reachable again but takes no batch (only the
			// probe's replay gets through).
			mode.Store(refuseBatches)
			waitFor(t, "two refused posts of the batch behind the probe", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return refused >= 2
			})
			mu.Lock()
			defer mu.Unlock()
			if online > 0 {
				t.Errorf("the uplink reported itself online at %d of %d posts of a batch the cloud never took, after the link had failed: a probe's replay with ops waiting behind it brought it online", online, refused)
			}
		})
	}
}
