package e2e_test

import (
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

// What the store-peers scenarios (8 and 9) share: a store's tills cut from
// the cloud, offline redeems accepted at one till and refused at another,
// and what a till keeps of the cloud's roster and keyring.

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
