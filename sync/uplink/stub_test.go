package uplink_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// stubLedger is the batch protocol's cloud side reduced to its rules, for
// the uplink's own tests: verify with sync/batch, apply a batch only if it
// follows the watermark and the chain, answer a retry with the same ack, a
// gap with a signed 409, and count every op it applies. It is the unit
// test's edge; the end-to-end tests run the real cloud.
type stubLedger struct {
	t      testing.TB
	cloud  *batch.Signer
	keys   map[string]ed25519.PublicKey // terminal -> key
	reject func(b *batch.Batch) (status int, ok bool)

	mu       sync.Mutex
	epochs   map[epochKey]*epochState
	applied  map[loyalty.OpID][]byte // op ID -> canonical op
	balances map[loyalty.CardHash]loyalty.Points
	times    map[loyalty.OpID]int // times an op was applied: must stay 1
	posts    [][]byte
}

type epochKey struct {
	terminal string
	epoch    uint32
}

type epochState struct {
	watermark uint64
	last      batch.Hash
	acks      map[batch.Hash]*batch.Ack
}

func newStubLedger(t testing.TB, cloud *batch.Signer) *stubLedger {
	return &stubLedger{
		t: t, cloud: cloud, keys: map[string]ed25519.PublicKey{},
		epochs: map[epochKey]*epochState{}, applied: map[loyalty.OpID][]byte{},
		balances: map[loyalty.CardHash]loyalty.Points{}, times: map[loyalty.OpID]int{},
	}
}

func (l *stubLedger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/batches" {
		http.NotFound(w, r)
		return
	}
	body, err := batch.ReadBody(w, r, batch.MaxBatchBytes)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, batch.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), status)
		return
	}
	env, err := batch.ParseEnvelope(body, batch.MaxBatchBytes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.posts = append(l.posts, body)
	pub, ok := l.keys[env.KeyID.Signer]
	if !ok {
		http.Error(w, "unknown terminal", http.StatusForbidden)
		return
	}
	b, h, err := env.OpenBatch(l.cloud.Program(), pub)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if l.reject != nil {
		if status, bad := l.reject(b); bad {
			w.WriteHeader(status)
			return
		}
	}
	k := epochKey{b.Terminal, b.Epoch}
	st := l.epochs[k]
	if st == nil {
		st = &epochState{acks: map[batch.Hash]*batch.Ack{}}
		l.epochs[k] = st
	}
	if a, seen := st.acks[h]; seen {
		dup := *a
		dup.Status, dup.Watermark, dup.LastHash = batch.AckDuplicate, st.watermark, st.last
		l.reply(w, http.StatusOK, &dup)
		return
	}
	if b.First != st.watermark+1 || b.Prev != st.last {
		l.reply(w, http.StatusConflict, &batch.Ack{Terminal: b.Terminal, Epoch: b.Epoch, Status: batch.AckGap, Watermark: st.watermark, LastHash: st.last})
		return
	}
	a := &batch.Ack{Terminal: b.Terminal, Epoch: b.Epoch, Status: batch.AckApplied, Watermark: b.Last, LastHash: h, BatchHash: h, Time: time.Now()}
	cards := map[loyalty.CardHash]bool{}
	for i := range b.Ops {
		o := &b.Ops[i]
		c := o.AppendCanonical(nil)
		res := batch.Result{Seq: o.Seq, ID: o.ID, Outcome: batch.Applied}
		if prev, seen := l.applied[o.ID]; seen {
			res.Outcome = batch.Duplicate
			if !bytes.Equal(prev, c) {
				res.Outcome, res.Reason = batch.Rejected, batch.RejectConflict
			}
		} else {
			l.applied[o.ID] = c
			l.times[o.ID]++
			l.balances[o.Card] += o.Points
			cards[o.Card] = true
		}
		a.Results = append(a.Results, res)
	}
	for c := range cards {
		a.Snapshots = append(a.Snapshots, loyalty.Snapshot{Card: c, Balance: l.balances[c], AsOf: a.Time})
	}
	st.watermark, st.last, st.acks[h] = b.Last, h, a
	l.reply(w, http.StatusOK, a)
}

func (l *stubLedger) reply(w http.ResponseWriter, status int, a *batch.Ack) {
	b, err := l.cloud.SealAck(a)
	if err != nil {
		l.t.Errorf("stub ledger: seal ack: %v", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", batch.ContentType)
	w.WriteHeader(status)
	w.Write(b)
}

// check fails the test unless every op of want was applied exactly once.
func (l *stubLedger) check(t testing.TB, want []loyalty.Op) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range want {
		if n := l.times[o.ID]; n != 1 {
			t.Errorf("op %d/%d applied %d times, want 1", o.Epoch, o.Seq, n)
		}
	}
	if len(l.times) != len(want) {
		t.Errorf("ledger holds %d ops, want %d", len(l.times), len(want))
	}
}
