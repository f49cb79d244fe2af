package e2e_test

import (
	"context"
	"testing"
	"time"
)

// Scenario 8 (issue 8): two agent processes of one store, their link to
// the cloud cut, the same card at both. The first till honours the
// redeem offline and prints it; the second learns of it from its peer
// over serf and refuses, with a reason the cashier can read, so the store
// as a whole stays within the card's offline allowance (invariant 4).
// The tills know each other only from the store roster and gossip keyring
// the cloud handed out at enrollment ('tillpoint enroll --advertise').
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
	for _, cents := range []int{15000, 100} {
		for _, tl := range s.tills {
			if r := tl.post(ctx, t, "/v1/checkout", "p-"+tl.term.ID+"-"+time.Now().Format("150405.000000"), map[string]any{"card": card, "basket": eurBasket(cents)}); r.Status != 200 {
				t.Fatalf("online checkout at %s: got %v, want 200", tl.term.ID, r)
			}
		}
		waitSynced(ctx, t, s, 30*time.Second)
	}
	waitPeersAlive(ctx, t, s.tills)

	// B asks its peers before it approves (query_threshold 0): A's answer,
	// or its redeem event, makes B refuse.
	cutAll(ctx, t, s, card, "p-cut-")
	redeemOffline(ctx, t, a, card, "p-redeem-a")
	refuseOffline(ctx, t, b, card, "p-redeem-b", a)
}
