package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

// Scenario 9 (issue 8): the store roster and gossip keyring follow the
// cloud while the tills run. Two tills serve; a third enrolls with
// 'tillpoint enroll --advertise' and starts, and the first two learn it
// from GET /v1/roster without a restart. The operator rotates the store's
// gossip key ('tillpoint cloud rotate-gossip-key', then --finish); every
// till switches to the new key and drops the old one, and offline redeem
// hints still flow: a card redeemed offline at the new till is refused at
// the other two (invariant 4). Then the operator revokes the new till
// ('tillpoint cloud revoke'): the others drop it from their roster and
// ignore the redeems it announces, while still sharing their own.
func TestScenario9_RosterFollowsTheCloud(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := newStore(t, tillOpts{tcpPrinter: true, peers: true}, tillOpts{tcpPrinter: true, peers: true})
	t1, t2 := s.tills[0], s.tills[1]
	for _, tl := range s.tills {
		requireRules(ctx, t, tl)
	}
	waitPeersAlive(ctx, t, s.tills)
	pids := []int{t1.agent.Proc.Pid(), t2.agent.Proc.Pid()}

	// A third till joins while the two run.
	t3 := s.addTill(t, tillOpts{tcpPrinter: true, peers: true})
	requireRules(ctx, t, t3)
	for _, tl := range []*till{t1, t2} {
		harness.Eventually(t, 60*time.Second, tl.term.ID+" keeps a store roster that lists "+t3.term.ID, func() (bool, string) {
			r, err := savedRoster(tl)
			if err != nil {
				return false, err.Error()
			}
			for _, m := range r.Doc.Terminals {
				if m.ID == t3.term.ID && !m.Revoked && m.Addr == t3.gossip {
					return true, ""
				}
			}
			return false, fmt.Sprintf("roster version %d lists %+v", r.Version(), r.Doc.Terminals)
		})
	}
	waitPeersAlive(ctx, t, s.tills)
	if got := []int{t1.agent.Proc.Pid(), t2.agent.Proc.Pid()}; got[0] != pids[0] || got[1] != pids[1] {
		t.Fatalf("the first two tills' agents restarted (pids %v, then %v); they must learn the new till live", pids, got)
	}

	// Online: two cards enroll and earn 300 points at till 1; a one-euro
	// sale at each till brings every till the cloud's final snapshot,
	// whose allowance (half the balance of 303) covers one coffee of 100
	// but not two.
	cards := []string{"barcode:ROSTER0001", "barcode:ROSTER0002"}
	for _, card := range cards {
		if r := t1.post(ctx, t, "/v1/enroll", "r-enroll-"+card, map[string]any{"card": card}); r.Status != 200 {
			t.Fatalf("enroll: got %v, want 200", r)
		}
	}
	waitSynced(ctx, t, s, 60*time.Second)
	for _, card := range cards {
		if r := t1.post(ctx, t, "/v1/checkout", "r-big-"+card, map[string]any{"card": card, "basket": eurBasket(30000)}); r.Status != 200 {
			t.Fatalf("online checkout at %s: got %v, want 200", t1.term.ID, r)
		}
	}
	waitSynced(ctx, t, s, 60*time.Second)
	for _, card := range cards {
		for _, tl := range s.tills {
			if r := tl.post(ctx, t, "/v1/checkout", "r-small-"+tl.term.ID+card, map[string]any{"card": card, "basket": eurBasket(100)}); r.Status != 200 {
				t.Fatalf("online checkout at %s: got %v, want 200", tl.term.ID, r)
			}
		}
	}
	waitSynced(ctx, t, s, 60*time.Second)

	// The operator rotates the store's gossip key; every till installs
	// the new key and encrypts with it, without a restart.
	before, err := savedRoster(t1)
	if err != nil {
		t.Fatal(err)
	}
	old := before.GossipKeys[0]
	out := s.cloud.RotateGossipKey(t, storeID, false)
	t.Logf("rotate-gossip-key: %s", out)
	var primary []byte
	for _, tl := range s.tills {
		harness.Eventually(t, 90*time.Second, tl.term.ID+" gossips with the store's new key", func() (bool, string) {
			r, err := savedRoster(tl)
			if err != nil {
				return false, err.Error()
			}
			if bytes.Equal(r.GossipKeys[0], old) {
				return false, fmt.Sprintf("roster version %d still has the old primary", r.Version())
			}
			if primary == nil {
				primary = r.GossipKeys[0]
			}
			if !bytes.Equal(r.GossipKeys[0], primary) {
				return false, "another till's roster has another new primary"
			}
			keys, err := serfKeyring(tl)
			if err != nil {
				return false, err.Error()
			}
			return bytes.Equal(keys[0], primary), fmt.Sprintf("serf keyring holds %d key(s), the new one not primary yet", len(keys))
		})
	}
	t.Logf("rotate-gossip-key --finish: %s", s.cloud.RotateGossipKey(t, storeID, true))
	for _, tl := range s.tills {
		harness.Eventually(t, 90*time.Second, tl.term.ID+" holds only the store's new gossip key", func() (bool, string) {
			keys, err := serfKeyring(tl)
			if err != nil {
				return false, err.Error()
			}
			return len(keys) == 1 && bytes.Equal(keys[0], primary), fmt.Sprintf("serf keyring holds %d key(s)", len(keys))
		})
	}
	waitPeersAlive(ctx, t, s.tills)

	// The cloud is cut: the card redeems offline at the new till, and the
	// two others learn it over the new key and refuse it.
	cutAll(ctx, t, s, cards[0], "r-cut1-")
	op := redeemOffline(ctx, t, t3, cards[0], "r-redeem1-"+t3.term.ID)
	for _, tl := range []*till{t1, t2} {
		waitLog(t, tl, "recorded a peer's offline redeem", op, t3.term.ID)
		refuseOffline(ctx, t, tl, cards[0], "r-redeem1-"+tl.term.ID, t3)
	}

	// The cloud comes back; the operator revokes the new till, and the
	// others drop it from their roster at their next refresh.
	for _, tl := range s.tills {
		tl.proxy.Restore()
	}
	waitSynced(ctx, t, s, 60*time.Second)
	s.cloud.Revoke(t, t3.term.ID)
	for _, tl := range []*till{t1, t2} {
		harness.Eventually(t, 60*time.Second, tl.term.ID+" drops "+t3.term.ID+" from its store roster", func() (bool, string) {
			r, err := savedRoster(tl)
			if err != nil {
				return false, err.Error()
			}
			revoked := false
			for _, m := range r.Doc.Terminals {
				revoked = revoked || m.ID == t3.term.ID && m.Revoked
			}
			if !revoked {
				return false, fmt.Sprintf("roster version %d does not mark %s revoked", r.Version(), t3.term.ID)
			}
			v := fmt.Sprintf("version=%d ", r.Version())
			return logged(tl, "store roster updated", v), "the roster is kept but not applied yet (no log line \"store roster updated\" " + v + ")"
		})
	}

	// Cut again: the revoked till still redeems offline on its own, but
	// the others ignore what it announces, so the card redeems at till 1
	// too; till 1's own redeem still reaches till 2, which refuses.
	cutAll(ctx, t, s, cards[0], "r-cut2-")
	op = redeemOffline(ctx, t, t3, cards[1], "r-redeem2-"+t3.term.ID)
	for _, tl := range []*till{t1, t2} {
		waitLog(t, tl, "ignored a redeem event from the store network", op, "terminal not in the store roster")
	}
	op = redeemOffline(ctx, t, t1, cards[1], "r-redeem2-"+t1.term.ID)
	waitLog(t, t2, "recorded a peer's offline redeem", op, t1.term.ID)
	refuseOffline(ctx, t, t2, cards[1], "r-redeem2-"+t2.term.ID, t1)
}

// eurBasket is one line of cents euro cents.
func eurBasket(cents int) map[string]any {
	return map[string]any{"currency": "EUR", "lines": []any{map[string]any{"sku": "hamper", "quantity": 1, "amount": cents}}}
}

// savedRoster reads the store roster and keyring a till keeps in its
// enrollment directory: what it last fetched from the cloud.
func savedRoster(tl *till) (*enroll.Roster, error) {
	st, err := enroll.Load(tl.term.EnrollDir)
	if err != nil {
		return nil, err
	}
	if st.Roster == nil || len(st.Roster.GossipKeys) == 0 {
		return nil, fmt.Errorf("%s keeps no store roster and keyring", tl.term.ID)
	}
	return st.Roster, nil
}

// serfKeyring reads the keyring a till's serf uses, the primary first
// (serf's keyring file in the state directory).
func serfKeyring(tl *till) ([][]byte, error) {
	b, err := os.ReadFile(filepath.Join(tl.term.StateDir, "serf.keyring"))
	if err != nil {
		return nil, err
	}
	var enc []string
	if err := json.Unmarshal(b, &enc); err != nil {
		return nil, fmt.Errorf("serf keyring of %s: %w", tl.term.ID, err)
	}
	if len(enc) == 0 {
		return nil, fmt.Errorf("serf keyring of %s is empty", tl.term.ID)
	}
	keys := make([][]byte, len(enc))
	for i, e := range enc {
		if keys[i], err = base64.StdEncoding.DecodeString(e); err != nil {
			return nil, fmt.Errorf("serf keyring of %s: %w", tl.term.ID, err)
		}
	}
	return keys, nil
}

// waitPeersAlive waits until every till's /v1/status lists every other
// till as an alive member of the store's cluster.
func waitPeersAlive(ctx context.Context, t *testing.T, tills []*till) {
	t.Helper()
	for _, self := range tills {
		harness.Eventually(t, 60*time.Second, self.term.ID+" sees every other till alive", func() (bool, string) {
			r, err := self.agent.Do(ctx, "GET", "/v1/status", "", nil)
			if err != nil {
				return false, err.Error()
			}
			var st struct {
				Peers []struct{ Terminal, Status string } `json:"peers"`
			}
			if err := r.Decode(&st); err != nil {
				return false, err.Error()
			}
			alive := map[string]bool{}
			for _, p := range st.Peers {
				alive[p.Terminal] = p.Status == "alive"
			}
			for _, other := range tills {
				if other != self && !alive[other.term.ID] {
					return false, string(r.Body)
				}
			}
			return true, ""
		})
	}
}

// cutAll cuts every till from the cloud; a sale for card at each makes it
// try the cloud and notice.
func cutAll(ctx context.Context, t *testing.T, s *store, card, key string) {
	t.Helper()
	for _, tl := range s.tills {
		tl.proxy.Cut()
		if r := tl.post(ctx, t, "/v1/checkout", key+tl.term.ID, map[string]any{"card": card, "basket": eurBasket(100)}); r.Status != 200 {
			t.Fatalf("checkout during the outage at %s: got %v, want 200", tl.term.ID, r)
		}
	}
	waitOffline(ctx, t, s)
}

// redeemOffline redeems a coffee for card at tl, which must accept it
// offline and print a receipt naming the reward; it returns the op ID.
func redeemOffline(ctx context.Context, t *testing.T, tl *till, card, key string) string {
	t.Helper()
	printed := len(tl.receipts(t))
	var o opReply
	if r := tl.post(ctx, t, "/v1/redeem", key, map[string]any{"card": card, "reward": "coffee"}); r.Status != 200 || r.Decode(&o) != nil {
		t.Fatalf("offline redeem at %s: got %v, want 200 (the allowance covers one coffee)", tl.term.ID, r)
	}
	if !o.Offline {
		t.Errorf("redeem at %s during the outage: got offline=false, want true", tl.term.ID)
	}
	docs := tl.waitReceipts(t, printed+1, 30*time.Second)
	if got := docs[len(docs)-1].Text(42); !strings.Contains(got, "Coffee") {
		t.Errorf("%s's receipt for the redeem does not name the reward:\n%s", tl.term.ID, got)
	}
	return o.OpID
}

// refuseOffline redeems a coffee for card at tl, which must refuse it
// (invariant 4: the card redeemed at other already), say why, and print
// nothing.
func refuseOffline(ctx context.Context, t *testing.T, tl *till, card, key string, other *till) {
	t.Helper()
	printed := len(tl.receipts(t))
	r := tl.post(ctx, t, "/v1/redeem", key, map[string]any{"card": card, "reward": "coffee"})
	if r.Status == 200 || r.Problem == nil || r.Problem.Code != "offline_cap_reached" {
		t.Fatalf("the same card at %s after %s's offline redeem: got %v, want a refusal offline_cap_reached (invariant 4)", tl.term.ID, other.term.ID, r)
	}
	if !strings.Contains(strings.ToLower(r.Problem.Detail), "offline") {
		t.Errorf("refusal at %s does not tell the cashier why: %q", tl.term.ID, r.Problem.Detail)
	}
	if n := len(tl.receipts(t)); n != printed {
		t.Errorf("%s printed %d receipts for a refused redeem, want none", tl.term.ID, n-printed)
	}
}

// waitLog waits until the till's agent logged a line holding msg and each
// of the other strings.
func waitLog(t *testing.T, tl *till, msg string, also ...string) {
	t.Helper()
	harness.Eventually(t, 60*time.Second, tl.term.ID+" logs "+msg+" "+strings.Join(also, " "), func() (bool, string) {
		return logged(tl, msg, also...), "no such line yet"
	})
}

// logged reports whether the till's agent logged a line holding msg and
// each of the other strings.
func logged(tl *till, msg string, also ...string) bool {
	for line := range strings.SplitSeq(tl.agent.Proc.Output(), "\n") {
		ok := strings.Contains(line, msg)
		for _, s := range also {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return true
		}
	}
	return false
}
