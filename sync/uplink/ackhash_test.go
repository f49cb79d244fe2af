package uplink_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// An ack may leave out the hash of the batch it applied (an older cloud, a
// proxy that re-signs): the next batch then names no previous hash, the
// cloud refuses it naming the one to carry, and the uplink re-seals with
// it. After the resume point began to follow acks, that first refusal was
// taken for a cloud refusing a batch twice, and the uplink stopped for
// good after one batch. (Found by a review.) The real cloud is behind a
// front that drops the hash from its acks and signs them again with the
// cloud's key.
func TestAckWithoutItsHashStillLetsTheUplinkGoOn(t *testing.T) {
	c := newRestorableCloud(t)
	tm := c.env().enroll(t, "T-01")
	key, _, err := server.LoadOrCreateKey(c.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := batch.NewSigner(batch.CloudSigner, e2eProgram, key)
	if err != nil {
		t.Fatal(err)
	}
	front := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, c.env().url+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if a, err := batch.OpenAck(out, e2eProgram, key.Public().(ed25519.PublicKey)); err == nil && resp.StatusCode == http.StatusOK {
			a.LastHash = batch.Hash{}
			out, _ = cs.SealAck(a)
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(out)
	}))
	cfg := tm.config(t, front)
	cfg.MaxOps = 10
	appendOps(t, tm.j, earns(0, 30, 7))
	syncWithin(t, mustUplink(t, tm.j, cfg), 5*time.Second)
	if wm, _, _ := c.env().ledger.Watermark(context.Background(), "T-01", 1); wm != 30 {
		t.Errorf("cloud watermark %d, want 30", wm)
	}
}
