package uplink_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// hashlessFront serves c through a front that drops the hash of the batch
// an ack names as applied last (allowed: an older cloud, or a proxy that
// re-signs, may leave it out) and signs the ack again with the cloud's
// key: from 200 acks only, or from gap acks too.
func hashlessFront(t *testing.T, c *restorableCloud, gapsToo bool) string {
	t.Helper()
	key, _, err := server.LoadOrCreateKey(c.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := batch.NewSigner(batch.CloudSigner, e2eProgram, key)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, out, err := relay(r, c.front)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if resp.StatusCode == http.StatusOK || gapsToo {
			if a, err := batch.OpenAck(out, e2eProgram, key.Public().(ed25519.PublicKey)); err == nil {
				a.LastHash = batch.Hash{}
				out, _ = cs.SealAck(a)
			}
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(out)
	}))
}

// An ack may leave out the hash of the batch it applied: the next batch
// then names no previous hash, the cloud refuses it naming the one to
// carry, and the uplink re-seals with it. After the resume point began to
// follow acks, that first refusal was taken for a cloud refusing a batch
// twice, and the uplink stopped for good after one batch; then the same
// with a gap ack without the hash, after a restore of the cloud. (Both
// found by reviews.)
func TestAckWithoutItsHashStillLetsTheUplinkGoOn(t *testing.T) {
	t.Run("applied", func(t *testing.T) {
		c := newRestorableCloud(t)
		tm := c.env().enroll(t, "T-01")
		cfg := tm.config(t, hashlessFront(t, c, false))
		cfg.MaxOps = 10
		appendOps(t, tm.j, earns(0, 30, 7))
		syncWithin(t, mustUplink(t, tm.j, cfg), 5*time.Second)
		if wm, _, _ := c.env().ledger.Watermark(context.Background(), "T-01", 1); wm != 30 {
			t.Errorf("cloud watermark %d, want 30", wm)
		}
	})
	t.Run("gap", func(t *testing.T) {
		c := newRestorableCloud(t)
		tm := c.env().enroll(t, "T-01")
		cfg := tm.config(t, hashlessFront(t, c, true))
		cfg.MaxOps = 10
		u := mustUplink(t, tm.j, cfg)
		appendOps(t, tm.j, earns(0, 10, 7))
		syncWithin(t, u, 5*time.Second)
		backup := filepath.Join(t.TempDir(), "backup.db")
		if err := c.ledger.BackupTo(context.Background(), backup); err != nil {
			t.Fatal(err)
		}
		appendOps(t, tm.j, earns(100, 10, 7))
		syncWithin(t, u, 5*time.Second)
		c.restore(t, backup) // holds 1..10: the next batch gets a gap ack
		appendOps(t, tm.j, earns(200, 10, 7))
		syncWithin(t, u, 5*time.Second)
		if wm, _, _ := c.env().ledger.Watermark(context.Background(), "T-01", 1); wm != 30 {
			t.Errorf("cloud watermark %d, want 30", wm)
		}
	})
}
