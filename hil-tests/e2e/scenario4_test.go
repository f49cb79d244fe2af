package e2e_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Scenario 4: the cloud is cut for both terminals of the store; 200
// checkouts and redeems spread over both; the offline policy refuses what
// it must: no card redeems more offline than the allowance the cloud gave
// it, whichever till it uses (invariant 4: the two agent processes share
// their offline redeems over serf, offline/peers); the cloud comes back, first
// losing every answer (so the tills resend what was applied), then for
// good; within 30 s both backlogs are acknowledged and every card's
// balance in the cloud equals the model this test keeps on its own:
// 150 + 1 points per card at each till online, 22 per offline sale
// (harness.Rules by hand), less 100 per coffee a till accepted.
func TestScenario4_OutageThenEverythingReconciles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const capPerDay = 300
	s := newStore(t, tillOpts{redeemCap: capPerDay, peers: true}, tillOpts{redeemCap: capPerDay, peers: true})
	for _, tl := range s.tills {
		requireRules(ctx, t, tl)
	}
	st := s.tills[0].term.State(t)
	const coffee, coffeeCost = "coffee", 100 // harness.Rules
	bigBasket := map[string]any{"currency": "EUR", "lines": []any{map[string]any{"sku": "hamper", "quantity": 1, "amount": 15000}}}
	const bigPoints = 150

	// Online: six members enroll at till 1 and make one big purchase at
	// each till, so both tills hold the cards' snapshots from the acks.
	cards := make([]string, 6)
	model := map[string]int64{} // card -> balance the test expects
	for i := range cards {
		cards[i] = fmt.Sprintf("barcode:OUT%05d", i)
		if r := s.tills[0].post(ctx, t, "/v1/enroll", "o-enroll-"+cards[i], map[string]any{"card": cards[i]}); r.Status != 200 {
			t.Fatalf("enroll %d: got %v, want 200", i, r)
		}
	}
	waitSynced(ctx, t, s, 30*time.Second)
	for i, card := range cards {
		for _, tl := range s.tills {
			var o opReply
			if r := tl.post(ctx, t, "/v1/checkout", "o-first-"+tl.term.ID+card, map[string]any{"card": card, "basket": bigBasket}); r.Status != 200 || r.Decode(&o) != nil {
				t.Fatalf("online checkout %d at %s: got %v, want 200", i, tl.term.ID, r)
			}
			if o.Points != bigPoints {
				t.Errorf("online checkout of EUR 150: got %d points, want %d", o.Points, bigPoints)
			}
			model[card] += bigPoints
		}
	}
	waitSynced(ctx, t, s, 30*time.Second)
	// A one-euro sale per card at each till brings both tills the same,
	// final snapshot (balance and allowance) in its ack.
	small := map[string]any{"currency": "EUR", "lines": []any{map[string]any{"sku": "mint", "quantity": 1, "amount": 100}}}
	for _, card := range cards {
		for _, tl := range s.tills {
			if r := tl.post(ctx, t, "/v1/checkout", "o-small-"+tl.term.ID+card, map[string]any{"card": card, "basket": small}); r.Status != 200 {
				t.Fatalf("one-euro checkout at %s: got %v, want 200", tl.term.ID, r)
			}
			model[card]++
		}
	}
	waitSynced(ctx, t, s, 30*time.Second)
	// The cloud's allowance per card: what the store may let it redeem offline.
	allowance := map[loyalty.CardHash]int64{}
	_, set := snapshots(ctx, t, s.cloud.URL, st)
	for _, sn := range set.Snapshots {
		if sn.Allowance != nil {
			allowance[sn.Card] = int64(sn.Allowance.Points)
		}
	}
	key := loyalty.CardKey(mustHex(t, s.cloud.CardKey))
	hashOf := func(card string) loyalty.CardHash {
		tok, err := loyalty.ParseCardToken(card)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Hash(key)
	}

	for _, tl := range s.tills {
		tl.proxy.Cut()
	}
	redeemed := map[string]int64{} // offline redeems accepted, per card, both tills
	var refusedByCap, accepted int
	for i := range 200 {
		tl := s.tills[(i/3)%2] // runs of three ops per till, so both tills redeem
		card := cards[(i/2)%len(cards)]
		key := fmt.Sprintf("o-%d", i)
		if i == 6 {
			// Both tills have recorded sales and tried to send them by
			// now: they know the cloud is gone before the first redeem.
			waitOffline(ctx, t, s)
		}
		if i%4 == 3 && i > 6 {
			// Redeem n goes to card n mod 6, at till 1 for six redeems,
			// then at till 2 for six: each card tries both tills in turn.
			n := i / 4
			card, tl := cards[n%len(cards)], s.tills[(n/len(cards))%2]
			r := tl.post(ctx, t, "/v1/redeem", key, map[string]any{"card": card, "reward": coffee})
			switch {
			case r.Status == 200:
				var o opReply
				if err := r.Decode(&o); err != nil {
					t.Fatal(err)
				}
				if !o.Offline {
					t.Errorf("redeem %s during the outage: got offline=false, want true", key)
				}
				redeemed[card] += coffeeCost
				model[card] -= coffeeCost
				accepted++
			case r.Problem != nil && r.Problem.Code == "offline_cap_reached":
				refusedByCap++
			default:
				t.Errorf("redeem %s at %s: got %v, want 200 or offline_cap_reached (the card is known and has the points)", key, tl.term.ID, r)
			}
			continue
		}
		var o opReply
		if r := tl.post(ctx, t, "/v1/checkout", key, map[string]any{"card": card, "basket": basket()}); r.Status != 200 || r.Decode(&o) != nil {
			t.Errorf("checkout %s during the outage: got %v, want 200", key, r)
			continue
		}
		if o.Points != basketPoints {
			t.Errorf("checkout %s during the outage: got %d points, want %d", key, o.Points, basketPoints)
		}
		model[card] += basketPoints
	}
	if accepted == 0 || refusedByCap == 0 {
		t.Errorf("offline redeems: %d accepted, %d refused by the allowance; want both (the policy lets some through and stops the rest)", accepted, refusedByCap)
	}

	// The network comes back badly first: requests reach the cloud but
	// every answer is lost, so each till sends again what the cloud
	// already applied (invariant 2: applied once all the same).
	for _, tl := range s.tills {
		tl.proxy.DropResponses()
	}
	for _, tl := range s.tills {
		harness.Eventually(t, 30*time.Second, "an ack to "+tl.term.ID+" is lost", func() (bool, string) {
			return tl.proxy.Dropped() > 0, "no answer dropped yet"
		})
	}
	restored := time.Now()
	for _, tl := range s.tills {
		tl.proxy.Restore()
	}
	waitSynced(ctx, t, s, 30*time.Second)
	t.Logf("reconciled %v after the cloud came back; %d redeems accepted offline, %d refused", time.Since(restored).Round(time.Millisecond), accepted, refusedByCap)
	bal, _ := snapshots(ctx, t, s.cloud.URL, st)
	for _, c := range cards {
		if got, want := int64(bal[hashOf(c)]), model[c]; got != want {
			t.Errorf("card …%s in the cloud: got balance %d, want %d (the model)", c[len(c)-4:], got, want)
		}
	}
	s.cloud.Check(t)
	// Invariant 4 across the store, checked last so that the rest is
	// reported whatever the outcome.
	var over []string
	for _, c := range cards {
		a, ok := allowance[hashOf(c)]
		if !ok {
			a = capPerDay
		}
		if redeemed[c] > a {
			over = append(over, fmt.Sprintf("…%s redeemed %d with an allowance of %d", c[len(c)-4:], redeemed[c], a))
		}
	}
	if len(over) > 0 {
		t.Errorf("invariant 4: offline redeems over the allowance across the store: %s", strings.Join(over, "; "))
	}
}

// waitOffline waits until every till says it cannot reach the cloud.
func waitOffline(ctx context.Context, t *testing.T, s *store) {
	t.Helper()
	for _, tl := range s.tills {
		harness.Eventually(t, 30*time.Second, "till "+tl.term.ID+" reports offline", func() (bool, string) {
			st, err := tl.agent.Status(ctx)
			if err != nil {
				return false, err.Error()
			}
			return !st.Sync.Online, fmt.Sprintf("sync %+v", st.Sync)
		})
	}

}

// waitSynced waits until the cloud acknowledged every op of every till:
// the journal itself (read with 'tillpoint journal stats') has no
// unacknowledged op. /v1/status alone cannot say so: before its first
// round the uplink reports an empty backlog.
func waitSynced(ctx context.Context, t *testing.T, s *store, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d) // one deadline for the whole store
	for _, tl := range s.tills {
		for {
			st := journalStats(ctx, t, tl)
			if st.Unacked == 0 && st.Ops > 0 || st.Ops == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("till %s: %d of %d ops still unacknowledged by the cloud after %v", tl.term.ID, st.Unacked, st.Ops, d)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
