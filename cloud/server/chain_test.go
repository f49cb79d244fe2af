package server_test

import (
	"encoding/hex"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// TestBatchChainIsCheckedAlways: every batch must name the hash of the
// last batch applied for its terminal and epoch as its previous one, the
// zero hash only for an epoch's first batch; a batch that names another
// (forged) or none is refused with a batch_conflict that says which hash
// to name, and changes nothing (invariant 6). Every ack names the hash the
// next batch must carry.
func TestBatchChainIsCheckedAlways(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ts := newTestServerWith(t, open(t))
		tm := enroll(t, ts, "S1", "T1")

		forged := batch.Hash{0xf0, 0x0d}
		first := tm.sealAt(t, 1, 3, forged)
		status, h, body := post(t, ts, first.Bytes)
		p := wantProblem(t, status, h, body, http.StatusConflict, server.CodeBatchConflict)
		if p.LastHash != "" {
			t.Errorf("an epoch's first batch with a previous hash: last_hash %q, want none", p.LastHash)
		}

		b1 := tm.seal(t, 3)
		status, h, body = post(t, ts, b1.Bytes)
		if status != http.StatusOK {
			t.Fatalf("first batch: %d %s", status, body)
		}
		if ack := openAck(t, ts, h, body); ack.LastHash != b1.Hash {
			t.Fatalf("ack last hash %s, want the batch's own %s", ack.LastHash.Short(), b1.Hash.Short())
		}

		before := stateOf(t, ts, tm)
		for name, prev := range map[string]batch.Hash{"forged": forged, "missing (a terminal that lost track)": {}} {
			t.Run(name, func(t *testing.T) {
				status, h, body := post(t, ts, tm.sealAt(t, tm.next, 2, prev).Bytes)
				p := wantProblem(t, status, h, body, http.StatusConflict, server.CodeBatchConflict)
				if p.LastHash != hex.EncodeToString(b1.Hash[:]) || p.Watermark == nil || *p.Watermark != 3 {
					t.Errorf("refusal names last hash %q watermark %v, want %s and 3", p.LastHash, p.Watermark, b1.Hash)
				}
				if !strings.Contains(p.Detail, "does not name the last batch applied (up to 3, hash "+b1.Hash.Short()) {
					t.Errorf("detail %q does not say which batch to name", p.Detail)
				}
				if after := stateOf(t, ts, tm); !reflect.DeepEqual(after, before) {
					t.Fatalf("a batch off the chain changed the ledger: before %+v, after %+v", before, after)
				}
			})
		}

		b2 := tm.seal(t, 2)
		status, h, body = post(t, ts, b2.Bytes)
		if status != http.StatusOK {
			t.Fatalf("batch naming the last hash: %d %s", status, body)
		}
		if ack := openAck(t, ts, h, body); ack.Status != batch.AckApplied || ack.Watermark != 5 || ack.LastHash != b2.Hash {
			t.Fatalf("ack %v watermark %d last hash %s, want applied 5 %s", ack.Status, ack.Watermark, ack.LastHash.Short(), b2.Hash.Short())
		}
		// A replay of an older batch names where the chain stands now.
		status, h, body = post(t, ts, b1.Bytes)
		if ack := openAck(t, ts, h, body); status != http.StatusOK || ack.Status != batch.AckDuplicate || ack.LastHash != b2.Hash {
			t.Fatalf("replay: %d %v last hash %s, want a duplicate naming %s", status, ack.Status, ack.LastHash.Short(), b2.Hash.Short())
		}

		// A new epoch starts a new chain: its first batch names none.
		tm.epoch, tm.next = 2, 1
		status, h, body = post(t, ts, tm.sealAt(t, 1, 1, b2.Hash).Bytes)
		wantProblem(t, status, h, body, http.StatusConflict, server.CodeBatchConflict)
		tm.prev = batch.Hash{}
		if status, _, body := post(t, ts, tm.seal(t, 1).Bytes); status != http.StatusOK {
			t.Fatalf("first batch of epoch 2: %d %s", status, body)
		}
	})
}

// TestOldEpochContinuedOnItsChainIsAppliedAndLogged: a copy of a
// terminal's journal that goes on selling in the epoch the terminal left
// (restored with its epoch file, a cloned disk) holds real sales: they are
// applied when they continue that epoch's chain (they used to be refused
// as stale_epoch for good), and the server warns that a second till sells
// under the terminal's name.
func TestOldEpochContinuedOnItsChainIsAppliedAndLogged(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tm := enroll(t, ts, "S1", "T1")
	if status, _, body := post(t, ts, tm.seal(t, 2).Bytes); status != http.StatusOK {
		t.Fatalf("epoch 1: %d %s", status, body)
	}
	copyOfEpoch1 := *tm
	tm.epoch, tm.next, tm.prev = 2, 1, batch.Hash{}
	if status, _, body := post(t, ts, tm.seal(t, 1).Bytes); status != http.StatusOK {
		t.Fatalf("epoch 2: %d %s", status, body)
	}
	if strings.Contains(ts.logs.String(), "an epoch the terminal had left") {
		t.Fatal("warned before any op came in an old epoch")
	}
	status, h, body := post(t, ts, copyOfEpoch1.seal(t, 3).Bytes)
	if status != http.StatusOK {
		t.Fatalf("new ops continuing epoch 1 after epoch 2 began: %d %s, want them applied", status, body)
	}
	if ack := openAck(t, ts, h, body); ack.Status != batch.AckApplied || ack.Epoch != 1 || ack.Watermark != 5 {
		t.Errorf("ack %s epoch %d watermark %d, want applied, epoch 1 watermark 5", ack.Status, ack.Epoch, ack.Watermark)
	}
	if !strings.Contains(ts.logs.String(), "an epoch the terminal had left") {
		t.Errorf("no warning of a second till selling in epoch 1; log:\n%s", ts.logs.String())
	}
}
