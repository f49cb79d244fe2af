package uplink_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// chainRecorder stands between the uplink and the real cloud and keeps
// every batch the cloud applied, as the cloud answered it. While lose is
// set it forwards a request and loses the answer (a 502 to the uplink);
// while down it answers 503 without forwarding.
type chainRecorder struct {
	t     testing.TB
	fwd   *faultProxy
	term  ed25519.PublicKey
	cloud ed25519.PublicKey

	mu         sync.Mutex
	lose, down bool
	applied    []*batch.Batch // in the order the cloud applied them
	hashes     []batch.Hash   // their hashes
	refused    map[int]int    // HTTP status -> count of refusals
	posts      int
}

func (c *chainRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.posts++
	down, lose := c.down, c.lose
	c.mu.Unlock()
	if down {
		http.Error(w, "cloud unreachable", http.StatusServiceUnavailable)
		return
	}
	status, h, reply := c.fwd.forward(heldRequest{path: r.URL.RequestURI(), ctype: r.Header.Get("Content-Type"), body: body})
	c.mu.Lock()
	switch {
	case status == http.StatusOK:
		a, err := batch.OpenAck(reply, e2eProgram, c.cloud)
		if err != nil {
			c.t.Errorf("the cloud's ack does not verify: %v", err)
		} else if a.Status == batch.AckApplied {
			b, hash, err := batch.OpenBatch(body, e2eProgram, c.term)
			if err != nil {
				c.t.Errorf("a batch the cloud applied does not open: %v", err)
			}
			c.applied, c.hashes = append(c.applied, b), append(c.hashes, hash)
		}
	default:
		c.refused[status]++
	}
	c.mu.Unlock()
	if lose {
		http.Error(w, "answer lost", http.StatusBadGateway)
		return
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	w.Write(reply)
}

func (c *chainRecorder) set(lose, down bool) {
	c.mu.Lock()
	c.lose, c.down = lose, down
	c.mu.Unlock()
}

// TestE2ERestartMidStreamChainIsVerified: the uplink is restarted twice
// in the middle of a stream, once with an empty outbox and once with a
// sealed batch the cloud applied but whose ack was lost. The real cloud
// checks every batch's previous hash (and refuses one that does not name
// the last batch applied, see cloud/server's TestBatchChainIsCheckedAlways);
// here every batch it applied names exactly the batch before it, the
// first of the epoch none, and none was refused: each restarted uplink
// knew the chain from its journal. Every op is on the ledger once.
func TestE2ERestartMidStreamChainIsVerified(t *testing.T) {
	for _, l := range ledgers {
		t.Run(l.name, func(t *testing.T) {
			c := newCloudOn(t, l.open(t))
			tm := c.enroll(t, "T-01")
			rec := &chainRecorder{t: t, fwd: newFaultProxy(t, c.url, 1, 0), term: tm.st.Key.Public().(ed25519.PublicKey),
				cloud: tm.st.CloudKey, refused: map[int]int{}}
			url := serve(t, rec)
			model := map[loyalty.CardHash]loyalty.Points{}
			add := func(from, n int) {
				for _, o := range appendOps(t, tm.j, earns(from, n, 7)) {
					model[o.Card] += o.Points
				}
			}
			newUplink := func() *uplink.Uplink {
				cfg := tm.config(t, url)
				cfg.MaxOps = 25
				u := mustUplink(t, tm.j, cfg)
				return u
			}

			add(0, 50)
			syncWithin(t, newUplink(), time.Minute) // two batches, outbox empty

			// Restart 1: a new uplink, its first batch chained from the journal.
			add(50, 50)
			rec.set(true, false)
			u2 := newUplink()
			ctx, cancel := context.WithCancel(context.Background())
			u2.Start(ctx)
			t.Cleanup(func() { u2.Shutdown(context.Background()) })
			waitFor(t, "a batch applied with its ack lost", func() bool {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				return len(rec.applied) == 3
			})
			rec.set(false, true)
			if err := u2.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			cancel()
			if sealed, err := tm.j.Sealed(context.Background()); err != nil || len(sealed) != 1 {
				t.Fatalf("outbox at restart 2: %d sealed batches (%v), want the one applied without its ack", len(sealed), err)
			}

			// Restart 2: resend the sealed batch, then chain on.
			rec.set(false, false)
			u3 := newUplink()
			syncWithin(t, u3, time.Minute)

			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.refused) != 0 {
				t.Errorf("the cloud refused batches %v; every restarted uplink should know the chain", rec.refused)
			}
			if len(rec.applied) != 4 {
				t.Fatalf("the cloud applied %d batches, want 4 of 25 ops", len(rec.applied))
			}
			for i, b := range rec.applied {
				want := batch.Hash{}
				if i > 0 {
					want = rec.hashes[i-1]
				}
				if b.Prev != want || (i > 0 && b.First != rec.applied[i-1].Last+1) {
					t.Errorf("batch %d..%d names previous %s, want %s", b.First, b.Last, b.Prev.Short(), want.Short())
				}
			}
			for _, u := range []*uplink.Uplink{u2, u3} {
				if st := u.State(); st.Gaps != 0 {
					t.Errorf("restarted uplink re-sealed %d times, want 0", st.Gaps)
				}
			}
			c.checkWatermark(t, tm, 100)
			c.checkBalances(t, model)
		})
	}
}
