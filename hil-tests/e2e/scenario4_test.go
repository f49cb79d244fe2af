package e2e_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

// Scenario 4: the cloud is cut for both terminals of the store; 200
// checkouts and redeems spread over both; the offline cap refuses what it
// must and never lets a card redeem more than the cap at the store,
// whichever till it uses (invariant 4); the cloud comes back; within 30 s
// both backlogs are acknowledged and every card's balance in the cloud
// equals the model this test keeps from what each till acknowledged
// (earned points, reward costs), independently of both binaries' sums.
func TestScenario4_OutageThenEverythingReconciles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const capPerDay = 300
	s := newStore(t, tillOpts{redeemCap: capPerDay}, tillOpts{redeemCap: capPerDay})
	for _, tl := range s.tills {
		requireUplink(t, tl)
		requireRules(ctx, t, tl)
	}
	st := s.tills[0].term.State(t)
	rules := fetchRules(ctx, t, s.cloud.URL, st)
	if len(rules.Rewards) == 0 {
		t.Fatalf("the cloud's rules (version %d) have no reward to redeem", rules.Version)
	}
	reward := rules.Rewards[0]
	for _, r := range rules.Rewards {
		if r.Cost < reward.Cost {
			reward = r
		}
	}

	// Online: six members enroll at till 1 and earn once; both tills sync.
	cards := make([]string, 6)
	model := map[string]int64{} // card -> balance the test expects
	for i := range cards {
		cards[i] = fmt.Sprintf("barcode:OUT%05d", i)
		tl := s.tills[0]
		if r := tl.post(ctx, t, "/v1/enroll", "o-enroll-"+cards[i], map[string]any{"card": cards[i]}); r.Status != 200 {
			t.Fatalf("enroll %d: got %v, want 200", i, r)
		}
		var o opReply
		if r := tl.post(ctx, t, "/v1/checkout", "o-first-"+cards[i], map[string]any{"card": cards[i], "basket": basket()}); r.Status != 200 || r.Decode(&o) != nil {
			t.Fatalf("first checkout %d: got %v, want 200", i, r)
		}
		model[cards[i]] += o.Points
	}
	waitSynced(ctx, t, s, 30*time.Second)

	for _, tl := range s.tills {
		tl.proxy.Cut()
	}
	for _, tl := range s.tills {
		harness.Eventually(t, 30*time.Second, "till "+tl.term.ID+" reports offline", func() (bool, string) {
			st, err := tl.agent.Status(ctx)
			if err != nil {
				return false, err.Error()
			}
			return !st.Sync.Online, fmt.Sprintf("sync %+v", st.Sync)
		})
	}

	redeemed := map[string]int64{} // offline redeems accepted, per card, both tills
	var refusedByCap, accepted int
	for i := range 200 {
		tl := s.tills[i%2]
		card := cards[(i/2)%len(cards)]
		key := fmt.Sprintf("o-%d", i)
		if i%4 == 3 {
			r := tl.post(ctx, t, "/v1/redeem", key, map[string]any{"card": card, "reward": reward.ID})
			switch {
			case r.Status == 200:
				var o opReply
				if err := r.Decode(&o); err != nil {
					t.Fatal(err)
				}
				if !o.Offline {
					t.Errorf("redeem %s during the outage: got offline=false, want true", key)
				}
				redeemed[card] += int64(reward.Cost)
				model[card] -= int64(reward.Cost)
				accepted++
			case r.Problem != nil && r.Problem.Code == "offline_cap_reached":
				refusedByCap++
				if redeemed[card]+int64(reward.Cost) <= capPerDay {
					t.Errorf("redeem %s of %d on a card with %d redeemed offline: refused by the cap %d, want accepted", key, reward.Cost, redeemed[card], capPerDay)
				}
			case r.Problem != nil && r.Problem.Code == "insufficient_points":
			default:
				t.Errorf("redeem %s: got %v, want 200, offline_cap_reached or insufficient_points", key, r)
			}
			continue
		}
		var o opReply
		if r := tl.post(ctx, t, "/v1/checkout", key, map[string]any{"card": card, "basket": basket()}); r.Status != 200 || r.Decode(&o) != nil {
			t.Errorf("checkout %s during the outage: got %v, want 200", key, r)
			continue
		}
		model[card] += o.Points
	}
	for card, n := range redeemed {
		if n > capPerDay {
			t.Errorf("card %s redeemed %d points offline across both tills, more than the store's cap %d (invariant 4)", card, n, capPerDay)
		}
	}
	if refusedByCap == 0 {
		t.Errorf("offline cap: nothing refused of %d redeems of %d points on %d cards, want the cap of %d to bind", accepted+refusedByCap, reward.Cost, len(cards), capPerDay)
	}

	restored := time.Now()
	for _, tl := range s.tills {
		tl.proxy.Restore()
	}
	waitSynced(ctx, t, s, 30*time.Second)
	t.Logf("reconciled %v after the cloud came back", time.Since(restored).Round(time.Millisecond))
	bal, _ := snapshots(ctx, t, s.cloud.URL, st)
	for _, c := range cards {
		tok, err := loyalty.ParseCardToken(c)
		if err != nil {
			t.Fatal(err)
		}
		key := loyalty.CardKey(mustHex(t, s.cloud.CardKey))
		if got, want := int64(bal[tok.Hash(key)]), model[c]; got != want {
			t.Errorf("card %s in the cloud: got balance %d, want %d (the model)", tok, got, want)
		}
	}
}

// waitSynced waits until every till's backlog is empty and it is online.
func waitSynced(ctx context.Context, t *testing.T, s *store, d time.Duration) {
	t.Helper()
	for _, tl := range s.tills {
		harness.Eventually(t, d, "till "+tl.term.ID+" acknowledged by the cloud", func() (bool, string) {
			st, err := tl.agent.Status(ctx)
			if err != nil {
				return false, err.Error()
			}
			return st.Sync.Online && st.Sync.BacklogOps == 0, fmt.Sprintf("sync %+v", st.Sync)
		})
	}
}

// fetchRules reads the cloud's current signed rules as terminal st.
func fetchRules(ctx context.Context, t *testing.T, cloudURL string, st *enroll.State) loyalty.Rules {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cloudURL+"/v1/rules", nil)
	if err != nil {
		t.Fatal(err)
	}
	st.SignRequest(req, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/rules: %d %s", resp.StatusCode, b)
	}
	doc, err := batch.OpenRules(b, st.Program, st.CloudKey)
	if err != nil {
		t.Fatalf("the cloud's rules do not verify: %v", err)
	}
	return doc.Rules
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
