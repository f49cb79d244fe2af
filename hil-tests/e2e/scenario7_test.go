package e2e_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// Scenario 7: a terminal enrolled for a second store holds a valid key of
// the program, yet whatever it signs cannot be taken as the first store's
// terminal: not by naming that terminal, not by forging its key ID, not by
// wrapping that terminal's ops in its own signature, and it cannot read
// the first store's member feed either. The first store's ledger stays
// exactly as its own terminal made it (invariant 6).
func TestScenario7_SecondStoreCannotPostAsFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cloud := harness.StartCloud(t)
	a1 := cloud.Enroll(t, cloud.URL, "store-a", "a1")
	b1 := cloud.Enroll(t, cloud.URL, "store-b", "b1")
	stA, stB := a1.State(t), b1.State(t)
	ta := newWireTerminal(t, stA)
	card := loyalty.CardHash{0xA1, 0xCA, 0x2D}

	// Control: store A's terminal posts its first batch and it is applied,
	// so the refusals below are the identity check and nothing else.
	s, b := ta.sealNext(t, card, 1, 100)
	if r := postBatch(ctx, t, cloud.URL, stA, s.Bytes); r.ack == nil || r.ack.Status != batch.AckApplied || r.ack.Watermark != 1 {
		t.Fatalf("store A's own first batch: got %v, want 200 applied with watermark 1", r)
	}
	ta.accepted(s, b)

	// B's key sealing A's next batch as if it were a1 (ops of a1, store A,
	// 999 points each so that any leak shows in the balance).
	asA, err := batch.NewSigner(stA.Terminal, stB.Program, stB.Key)
	if err != nil {
		t.Fatal(err)
	}
	next := &batch.Batch{Terminal: stA.Terminal, Epoch: 1, First: 2, Last: 2, Prev: ta.prev,
		Ops: earns(t, stA.Terminal, stA.Store, 1, 2, card, 1, 999)}
	sealedAsA, err := asA.SealBatch(next)
	if err != nil {
		t.Fatal(err)
	}
	fpA, fpB := batch.Fingerprint(stA.Key.Public().(ed25519.PublicKey)), batch.Fingerprint(stB.Key.Public().(ed25519.PublicKey))

	attacks := []struct {
		name     string
		body     []byte
		wantCode string
	}{
		{"b1's key signs a batch whose kid and ops name a1", sealedAsA.Bytes, "key_mismatch"},
		{"b1's key signs under a kid forged with a1's key fingerprint", forge(t, sealedAsA.Bytes, batch.KeyID{Signer: stA.Terminal, Key: fpA, Epoch: 1}, stB.Key, stB.Program, nil), "bad_signature"},
		{"b1 signs as itself a payload whose ops and terminal are a1's", forge(t, sealedAsA.Bytes, batch.KeyID{Signer: stB.Terminal, Key: fpB, Epoch: 1}, stB.Key, stB.Program, payloadOf(t, sealedAsA.Bytes)), "key_mismatch"},
		{"b1 replays a1's applied batch bytes under its own kid", forge(t, s.Bytes, batch.KeyID{Signer: stB.Terminal, Key: fpB, Epoch: 1}, stB.Key, stB.Program, nil), "key_mismatch"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			r := postBatch(ctx, t, cloud.URL, stB, a.body)
			if r.status < 400 || r.status >= 500 || r.ack != nil {
				t.Fatalf("got %v, want a 4xx refusal with code %s", r, a.wantCode)
			}
			t.Logf("refused: %v", r)
			if r.problem.Code != a.wantCode {
				t.Errorf("refusal code: got %q (%s), want %q", r.problem.Code, r.problem.Detail, a.wantCode)
			}
		})
	}

	// B cannot read store A's feed by signing as a1 with its own key.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cloud.URL+"/v1/snapshots", nil)
	impostor := *stB
	impostor.Terminal = stA.Terminal
	impostor.SignRequest(req, time.Now())
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET /v1/snapshots as a1 signed with b1's key: got %d, want 403", resp.StatusCode)
		}
	}
	// ...and its own feed does not carry store A's member.
	if bal, _ := snapshots(ctx, t, cloud.URL, stB); len(bal) != 0 {
		t.Errorf("store B's snapshot feed: got %d cards, want none (store B never saw a card)", len(bal))
	}

	// b1 posting as itself ops that claim store A: the cloud must not
	// book them to store A (its lots, liability and shortfall by store).
	t.Run("b1's own batch of ops claiming store A is not booked to store A", func(t *testing.T) {
		tb := newWireTerminal(t, stB)
		claim := &batch.Batch{Terminal: stB.Terminal, Epoch: 1, First: 1, Last: 1,
			Ops: earns(t, stB.Terminal, stA.Store, 1, 1, loyalty.CardHash{0xB1}, 1, 999)}
		sealed, err := tb.signer.SealBatch(claim)
		if err != nil {
			t.Fatal(err)
		}
		r := postBatch(ctx, t, cloud.URL, stB, sealed.Bytes)
		t.Logf("cloud answered %v", r)
		booked := cloud.QueryInt(t, `SELECT COUNT(*) FROM ops WHERE terminal = ? AND store = ? AND status = 1`, stB.Terminal, stA.Store) +
			cloud.QueryInt(t, `SELECT COUNT(*) FROM lots WHERE store = ? AND amount = 999`, stA.Store)
		if booked != 0 {
			t.Errorf("terminal b1 of store-b had %d op/lot rows booked to store-a; want none: a terminal books only to the store it was enrolled at", booked)
		}

	})

	// A's watermark did not move: its real next batch follows its first.
	s2, b2 := ta.sealNext(t, card, 1, 50)
	if r := postBatch(ctx, t, cloud.URL, stA, s2.Bytes); r.ack == nil || r.ack.Status != batch.AckApplied || r.ack.Watermark != 2 {
		t.Fatalf("store A's second batch after the attacks: got %v, want 200 applied with watermark 2", r)
	}
	ta.accepted(s2, b2)
	bal, _ := snapshots(ctx, t, cloud.URL, stA)
	if got := bal[card]; got != 150 {
		t.Errorf("store A's card balance in the cloud: got %d, want 150 (100 + 50 of a1's own; nothing of b1's 999s)", got)
	}
	cloud.Check(t)
	if resp, err := http.Get(cloud.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("cloud health after the attacks: got %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
}
