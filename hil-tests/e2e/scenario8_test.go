package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
)

// Scenario 8 (issue 8): two agent processes of one store, their link to
// the cloud cut, the same card at both. The first till honours the
// redeem offline and prints it; the second learns of it from its peer
// over serf and refuses, with a reason the cashier can read, so the store
// as a whole stays within the card's offline allowance (invariant 4).
func TestScenario8_SameCardAtTwoTillsDuringAnOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStore(t, tillOpts{tcpPrinter: true, peers: true}, tillOpts{tcpPrinter: true, peers: true})
	a, b := s.tills[0], s.tills[1]
	for _, tl := range s.tills {
		requireRules(ctx, t, tl)
	}

	// Online: the card enrolls at A and spends EUR 150 at each till; a
	// one-euro sale at each brings both tills the cloud's final snapshot,
	// whose allowance (half the balance of 301) covers one coffee of 100
	// but not two.
	const card = "barcode:PEER00001"
	if r := a.post(ctx, t, "/v1/enroll", "p-enroll", map[string]any{"card": card}); r.Status != 200 {
		t.Fatalf("enroll: got %v, want 200", r)
	}
	waitSynced(ctx, t, s, 30*time.Second)
	basket := func(cents int) map[string]any {
		return map[string]any{"currency": "EUR", "lines": []any{map[string]any{"sku": "hamper", "quantity": 1, "amount": cents}}}
	}
	for _, cents := range []int{15000, 100} {
		for _, tl := range s.tills {
			if r := tl.post(ctx, t, "/v1/checkout", "p-"+tl.term.ID+"-"+time.Now().Format("150405.000000"), map[string]any{"card": card, "basket": basket(cents)}); r.Status != 200 {
				t.Fatalf("online checkout at %s: got %v, want 200", tl.term.ID, r)
			}
		}
		waitSynced(ctx, t, s, 30*time.Second)
	}
	for _, pair := range [][2]*till{{a, b}, {b, a}} {
		self, other := pair[0], pair[1]
		harness.Eventually(t, 20*time.Second, self.term.ID+" lists "+other.term.ID+" among its peers", func() (bool, string) {
			r, err := self.agent.Do(ctx, "GET", "/v1/status", "", nil)
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(string(r.Body), `"`+other.term.ID+`"`), string(r.Body)
		})
	}

	for _, tl := range s.tills {
		tl.proxy.Cut()
		// A sale makes the till try the cloud and notice it is gone.
		if r := tl.post(ctx, t, "/v1/checkout", "p-cut-"+tl.term.ID, map[string]any{"card": card, "basket": basket(100)}); r.Status != 200 {
			t.Fatalf("checkout during the outage at %s: got %v, want 200", tl.term.ID, r)
		}
	}
	waitOffline(ctx, t, s)

	printedA := len(a.receipts(t))
	var o opReply
	if r := a.post(ctx, t, "/v1/redeem", "p-redeem-a", map[string]any{"card": card, "reward": "coffee"}); r.Status != 200 || r.Decode(&o) != nil {
		t.Fatalf("offline redeem at %s: got %v, want 200 (the allowance covers one coffee)", a.term.ID, r)
	}
	if !o.Offline {
		t.Errorf("redeem at %s during the outage: got offline=false, want true", a.term.ID)
	}
	docs := a.waitReceipts(t, printedA+1, 30*time.Second)
	if got := docs[len(docs)-1].Text(42); !strings.Contains(got, "Coffee") {
		t.Errorf("%s's receipt for the redeem does not name the reward:\n%s", a.term.ID, got)
	}

	printedB := len(b.receipts(t))
	r := b.post(ctx, t, "/v1/redeem", "p-redeem-b", map[string]any{"card": card, "reward": "coffee"})
	if r.Status == 200 || r.Problem == nil || r.Problem.Code != "offline_cap_reached" {
		t.Fatalf("the same card at %s after %s's offline redeem: got %v, want a refusal offline_cap_reached (invariant 4)", b.term.ID, a.term.ID, r)
	}
	if !strings.Contains(strings.ToLower(r.Problem.Detail), "offline") {
		t.Errorf("refusal at %s does not tell the cashier why: %q", b.term.ID, r.Problem.Detail)
	}
	if n := len(b.receipts(t)); n != printedB {
		t.Errorf("%s printed %d receipts for a refused redeem, want none", b.term.ID, n-printedB)
	}
}
