package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/sync/batch"
)

func TestBatchIsAppliedAndAckedWithTheCloudsSignature(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ts := newTestServerWith(t, open(t))
		tm := enroll(t, ts, "S1", "T1")
		sealed := tm.seal(t, 5)
		status, h, body := post(t, ts, sealed.Bytes)
		if status != http.StatusOK {
			t.Fatalf("post: %d %s, want 200", status, body)
		}
		ack := openAck(t, ts, h, body)
		if ack.Status != batch.AckApplied || ack.Watermark != 5 || ack.Terminal != "T1" || ack.Epoch != 1 {
			t.Fatalf("ack status %v watermark %d terminal %q epoch %d, want applied 5 T1 1", ack.Status, ack.Watermark, ack.Terminal, ack.Epoch)
		}
		if ack.BatchHash != sealed.Hash || ack.LastHash != sealed.Hash {
			t.Errorf("ack batch hash %s last hash %s, want both %s", ack.BatchHash.Short(), ack.LastHash.Short(), sealed.Hash.Short())
		}
		if len(ack.Results) != 5 {
			t.Fatalf("%d results, want 5", len(ack.Results))
		}
		for i, r := range ack.Results {
			if r.Outcome != batch.Applied || r.Seq != uint64(i+1) {
				t.Errorf("result %d: %v seq %d, want applied seq %d", i, r.Outcome, r.Seq, i+1)
			}
		}
		if len(ack.Snapshots) != 1 || ack.Snapshots[0].Card != tm.card || ack.Snapshots[0].Balance != 50 {
			t.Errorf("ack snapshots %+v, want one for the card with balance 50", ack.Snapshots)
		}
		st := stateOf(t, ts, tm)
		if st.watermark != 5 || st.report.Liability != 50 {
			t.Errorf("ledger watermark %d liability %d, want 5 and 50", st.watermark, st.report.Liability)
		}
	})
}

func TestDuplicateBatchGetsTheSameAckAgain(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ts := newTestServerWith(t, open(t))
		tm := enroll(t, ts, "S1", "T1")
		sealed := tm.seal(t, 3)
		_, h, body := post(t, ts, sealed.Bytes)
		first := openAck(t, ts, h, body)
		before := stateOf(t, ts, tm)

		status, h, body := post(t, ts, sealed.Bytes)
		if status != http.StatusOK {
			t.Fatalf("resend: %d %s, want 200", status, body)
		}
		again := openAck(t, ts, h, body)
		if again.Status != batch.AckDuplicate {
			t.Errorf("resend ack status %v, want duplicate", again.Status)
		}
		if again.Watermark != first.Watermark || again.BatchHash != first.BatchHash || len(again.Results) != len(first.Results) {
			t.Fatalf("resend ack watermark %d hash %s results %d, want %d %s %d", again.Watermark, again.BatchHash.Short(), len(again.Results), first.Watermark, first.BatchHash.Short(), len(first.Results))
		}
		for i := range first.Results {
			if again.Results[i] != first.Results[i] {
				t.Errorf("result %d: resend %+v, first %+v; a retry must never flip an outcome", i, again.Results[i], first.Results[i])
			}
		}
		if after := stateOf(t, ts, tm); !reflect.DeepEqual(after, before) {
			t.Errorf("a duplicate changed the ledger: before %+v, after %+v", before, after)
		}
	})
}

func TestSequenceGapGetsASignedGapAckWithTheWatermark(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ts := newTestServerWith(t, open(t))
		tm := enroll(t, ts, "S1", "T1")
		if status, _, body := post(t, ts, tm.seal(t, 10).Bytes); status != http.StatusOK {
			t.Fatalf("first batch: %d %s", status, body)
		}
		before := stateOf(t, ts, tm)
		status, h, body := post(t, ts, tm.sealAt(t, 20, 5, batch.Hash{}).Bytes)
		if status != http.StatusConflict {
			t.Fatalf("gap: %d %s, want 409", status, body)
		}
		ack := openAck(t, ts, h, body)
		if ack.Status != batch.AckGap || ack.Watermark != 10 || len(ack.Results) != 0 {
			t.Errorf("gap ack status %v watermark %d results %d, want gap 10 none", ack.Status, ack.Watermark, len(ack.Results))
		}
		if ack.LastHash != tm.prev {
			t.Errorf("gap ack last hash %s, want the applied batch's %s: the terminal re-seals naming it", ack.LastHash.Short(), tm.prev.Short())
		}
		if after := stateOf(t, ts, tm); !reflect.DeepEqual(after, before) {
			t.Errorf("a gap changed the ledger: before %+v, after %+v", before, after)
		}
	})
}

// TestRefusedBatchesChangeNothing is invariant 6 over real HTTP: each bad
// batch gets its own error, the ledger stays as it was, and the server
// goes on applying good batches.
func TestRefusedBatchesChangeNothing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ts := newTestServerWith(t, open(t))
		tm := enroll(t, ts, "S1", "T1")
		other := enroll(t, ts, "S1", "T2")
		revoked := enroll(t, ts, "S2", "T3")
		old := tm.seal(t, 5)
		if status, _, body := post(t, ts, old.Bytes); status != http.StatusOK {
			t.Fatalf("first batch: %d %s", status, body)
		}
		if status, _, body := post(t, ts, tm.seal(t, 5).Bytes); status != http.StatusOK {
			t.Fatalf("second batch: %d %s", status, body)
		}
		if err := ts.ledger.RevokeTerminal(context.Background(), revoked.id, ts.clock.Now()); err != nil {
			t.Fatal(err)
		}

		forged := tm.sealAt(t, tm.next, 2, tm.prev).Bytes
		forged[len(forged)-1] ^= 0x01

		impostor := *other
		impostor.id = tm.id // T2's key, claiming to be T1
		impostor.signer = mustSigner(t, tm.id, testProgram, other)

		otherProgram := *tm
		otherProgram.signer = mustSigner(t, tm.id, "another-program", tm)

		unknown := *other
		unknown.id = "T9"
		unknown.signer = mustSigner(t, "T9", testProgram, other)

		revokedForged := revoked.seal(t, 2).Bytes
		revokedForged[len(revokedForged)-1] ^= 0x01

		truncated := tm.sealAt(t, tm.next, 2, tm.prev).Bytes
		truncated = truncated[:len(truncated)/2]

		garbage := make([]byte, 512)
		_, _ = rand.Read(garbage)

		cases := []struct {
			name        string
			body        []byte
			contentType string
			status      int
			code        string
		}{
			{"forged signature", forged, batch.ContentType, http.StatusForbidden, server.CodeBadSignature},
			{"another terminal's key", impostor.sealAt(t, tm.next, 2, tm.prev).Bytes, batch.ContentType, http.StatusForbidden, server.CodeKeyMismatch},
			{"signed for another program", otherProgram.sealAt(t, tm.next, 2, tm.prev).Bytes, batch.ContentType, http.StatusForbidden, server.CodeBadSignature},
			{"revoked terminal", revoked.seal(t, 2).Bytes, batch.ContentType, http.StatusForbidden, server.CodeTerminalRevoked},
			{"revoked terminal, forged signature", revokedForged, batch.ContentType, http.StatusForbidden, server.CodeBadSignature},
			{"unknown terminal", unknown.sealAt(t, 1, 2, batch.Hash{}).Bytes, batch.ContentType, http.StatusForbidden, server.CodeUnknownTerminal},
			{"other ops at applied sequences", tm.sealAt(t, 1, 5, batch.Hash{}).Bytes, batch.ContentType, http.StatusConflict, server.CodeSequenceDiverged},
			{"reaching back below the watermark", tm.sealAt(t, tm.next-2, 5, batch.Hash{}).Bytes, batch.ContentType, http.StatusConflict, server.CodeSequenceRewind},
			{"oversized body", bytes.Repeat([]byte{0xd2}, server.DefaultMaxBatchBytes+1), batch.ContentType, http.StatusRequestEntityTooLarge, server.CodeBodyTooLarge},
			{"malformed cbor", garbage, batch.ContentType, http.StatusBadRequest, server.CodeMalformedBatch},
			{"truncated batch", truncated, batch.ContentType, http.StatusBadRequest, server.CodeMalformedBatch},
			{"empty body", nil, batch.ContentType, http.StatusBadRequest, server.CodeMalformedBatch},
			{"wrong content type", old.Bytes, "application/cbor", http.StatusUnsupportedMediaType, server.CodeUnsupportedMedia},
		}
		before := stateOf(t, ts, tm)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				status, h, body := do(t, "POST", ts.url+"/v1/batches", c.contentType, "", c.body)
				wantProblem(t, status, h, body, c.status, c.code)
				if after := stateOf(t, ts, tm); !reflect.DeepEqual(after, before) {
					t.Fatalf("the ledger changed: before %+v, after %+v", before, after)
				}
			})
		}

		t.Run("replayed old batch", func(t *testing.T) {
			status, h, body := post(t, ts, old.Bytes)
			if status != http.StatusOK {
				t.Fatalf("replay: %d %s, want 200 with a duplicate ack", status, body)
			}
			if ack := openAck(t, ts, h, body); ack.Status != batch.AckDuplicate || ack.Watermark != 10 {
				t.Errorf("replay ack %v watermark %d, want duplicate 10", ack.Status, ack.Watermark)
			}
			if after := stateOf(t, ts, tm); !reflect.DeepEqual(after, before) {
				t.Fatalf("the replay changed the ledger: before %+v, after %+v", before, after)
			}
		})

		t.Run("oversized body without a length", func(t *testing.T) {
			req, _ := http.NewRequest("POST", ts.url+"/v1/batches", io.MultiReader(bytes.NewReader(make([]byte, server.DefaultMaxBatchBytes)), bytes.NewReader([]byte{1})))
			req.Header.Set("Content-Type", batch.ContentType)
			status, h, body := send(t, req)
			wantProblem(t, status, h, body, http.StatusRequestEntityTooLarge, server.CodeBodyTooLarge)
		})

		// Still serving: the next good batch applies.
		status, h, body := post(t, ts, tm.seal(t, 2).Bytes)
		if status != http.StatusOK {
			t.Fatalf("good batch after the bad ones: %d %s", status, body)
		}
		if ack := openAck(t, ts, h, body); ack.Status != batch.AckApplied || ack.Watermark != 12 {
			t.Errorf("good batch ack %v watermark %d, want applied 12", ack.Status, ack.Watermark)
		}
	})
}

func mustSigner(t *testing.T, name, program string, keyOf *terminal) *batch.Signer {
	t.Helper()
	s, err := batch.NewSigner(name, program, keyOf.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBatchOfAReplacedKeyIsNotAppliedAfterTheReplacement defends "a
// revoked terminal's batches are refused": a batch signed with a
// terminal's old key, verified by the server just before the operator
// revokes the terminal and enrolls its replacement (new key, same ID), and
// applied after both, is refused inside the ledger's transaction.
func TestBatchOfAReplacedKeyIsNotAppliedAfterTheReplacement(t *testing.T) {
	store := openTestLedger(t)
	gl := &gatedLedger{Store: store, entered: make(chan struct{}, 4), gate: make(chan struct{})}
	ts := newTestServerWith(t, store, func(s *server.Server) { s.Ledger = gl })
	old := enroll(t, ts, "S1", "T1")
	sealed := old.seal(t, 3)

	done := gl.postHeld(t, ts, sealed.Bytes)
	// The till is stolen: revoke it, then enroll the replacement.
	if status, _, body := do(t, "POST", ts.url+"/v1/admin/terminals/T1/revoke", "", "Bearer "+testAdminToken, nil); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	enroll(t, ts, "S1", "T1") // a new key for T1
	close(gl.gate)
	status := <-done
	wm, _, err := ts.ledger.Watermark(context.Background(), "T1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if status == http.StatusOK || wm != 0 {
		t.Errorf("the old key's batch was answered %d and the ledger holds T1 epoch 1 up to %d: a revoked key's batch was applied after its replacement", status, wm)
	}
	// The same bytes sent now are refused: the window is the only way in.
	if status, _, _ := post(t, ts, old.sealAt(t, 4, 1, sealed.Hash).Bytes); status != http.StatusForbidden {
		t.Errorf("old key after the replacement: %d, want 403", status)
	}
}
