package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

// wireTerminal speaks the sync protocol by hand with an enrolled
// terminal's key, for the scenarios that attack the cloud directly.
type wireTerminal struct {
	st     *enroll.State
	signer *batch.Signer
	epoch  uint32
	next   uint64
	prev   batch.Hash
}

func newWireTerminal(t *testing.T, st *enroll.State) *wireTerminal {
	t.Helper()
	s, err := batch.NewSigner(st.Terminal, st.Program, st.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &wireTerminal{st: st, signer: s, epoch: 1, next: 1}
}

// earns returns n earn ops of points each on card, numbered from the
// terminal's next sequence, as terminal `as` of store `store` says.
func earns(t *testing.T, as, store string, epoch uint32, first uint64, card loyalty.CardHash, n int, points loyalty.Points) []loyalty.Op {
	t.Helper()
	ops := make([]loyalty.Op, n)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range ops {
		id, err := loyalty.NewOpID(now, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ops[i] = loyalty.Op{ID: id, Kind: loyalty.OpEarn, Store: store, Terminal: as, Epoch: epoch, Seq: first + uint64(i),
			WallTime: now, HLC: loyalty.HLC(uint64(now.UnixMilli()) << 16), Card: card, Points: points,
			Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "sku-1", Quantity: 1, Amount: 1000}}}}
	}
	return ops
}

// sealNext seals n earns of its own on card as the next batch, without
// advancing (accepted advances).
func (w *wireTerminal) sealNext(t *testing.T, card loyalty.CardHash, n int, points loyalty.Points) (batch.Sealed, *batch.Batch) {
	t.Helper()
	b := &batch.Batch{Terminal: w.st.Terminal, Epoch: w.epoch, First: w.next, Last: w.next + uint64(n) - 1, Prev: w.prev,
		Ops: earns(t, w.st.Terminal, w.st.Store, w.epoch, w.next, card, n, points)}
	s, err := w.signer.SealBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	return s, b
}

// accepted moves the terminal past a batch the cloud applied.
func (w *wireTerminal) accepted(s batch.Sealed, b *batch.Batch) {
	w.next, w.prev = b.Last+1, s.Hash
}

// cloudReply is the cloud's answer to a batch: a verified ack or a problem.
type cloudReply struct {
	status  int
	ack     *batch.Ack
	problem struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	body []byte
}

func (r *cloudReply) String() string {
	if r.ack != nil {
		return fmt.Sprintf("%d ack %s watermark %d", r.status, r.ack.Status, r.ack.Watermark)
	}
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

// postBatch posts sealed bytes and verifies an ack with the cloud key.
func postBatch(ctx context.Context, t *testing.T, cloudURL string, cloudKey *enroll.State, body []byte) *cloudReply {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cloudURL+"/v1/batches", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", batch.ContentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/batches: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	r := &cloudReply{status: resp.StatusCode, body: b}
	if resp.Header.Get("Content-Type") == batch.ContentType {
		ack, err := batch.OpenAck(b, cloudKey.Program, cloudKey.CloudKey)
		if err != nil {
			t.Fatalf("the cloud's ack does not verify: %v", err)
		}
		r.ack = ack
		return r
	}
	_ = json.Unmarshal(b, &r.problem)
	return r
}

// snapshots reads the store's snapshot feed signed as st and returns the
// balance of every card in it.
func snapshots(ctx context.Context, t *testing.T, cloudURL string, st *enroll.State) (map[loyalty.CardHash]loyalty.Points, *batch.SnapshotSet) {
	t.Helper()
	out := map[loyalty.CardHash]loyalty.Points{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cloudURL+"/v1/snapshots", nil)
	if err != nil {
		t.Fatal(err)
	}
	st.SignRequest(req, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /v1/snapshots: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/snapshots as %s: %d %s", st.Terminal, resp.StatusCode, b)
	}
	set, err := batch.OpenSnapshots(b, st.Program, st.CloudKey)
	if err != nil {
		t.Fatalf("the snapshot feed does not verify: %v", err)
	}
	for _, s := range set.Snapshots {
		out[s.Card] = s.Balance - s.Debt // what the member has, less what they owe
	}
	return out, set
}
