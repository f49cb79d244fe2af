package agent_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/peers"
)

func peerNames(t *testing.T, h *agenttest.Harness) []string {
	t.Helper()
	var st agent.Status
	if status, b := h.Get(t, "/v1/status", &st); status != 200 {
		t.Fatalf("status: got %d %s", status, b)
	}
	var names []string
	for _, p := range st.Peers {
		if p.Status == "alive" {
			names = append(names, p.Terminal)
		}
	}
	return names
}

// Invariant 4 across two tills: a card redeems offline at till A up to its
// allowance, and the same card at till B, which heard of A's redeems over
// the store's gossip, is refused: the store as a whole stays within the
// allowance while the cloud is out of reach.
func TestStorePeersKeepOfflineRedeemsWithinAllowanceAcrossTills(t *testing.T) {
	gossipKey := agenttest.WriteGossipKey(t, t.TempDir())
	a, b := agenttest.NewTill(t, "till-a", "127.0.0.21"), agenttest.NewTill(t, "till-b", "127.0.0.22")
	all := []agenttest.Till{a, b}
	ha := agenttest.StartStoreTill(t, a, all, nil, gossipKey, agenttest.Options{})
	addrA, err := ha.Peers.P.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	hb := agenttest.StartStoreTill(t, b, all, map[string]string{a.ID: addrA}, gossipKey, agenttest.Options{})

	agenttest.Eventually(t, 10*time.Second, "each till's /v1/status lists the other alive", func() bool {
		pa, pb := peerNames(t, ha), peerNames(t, hb)
		return len(pa) == 1 && pa[0] == b.ID && len(pb) == 1 && pb[0] == a.ID
	})

	const card = "barcode:2012345678901"
	c := agenttest.Card(t, card)
	h := c.Hash(agenttest.CardKey())
	snap := loyalty.Snapshot{Card: h, Member: "m1", Balance: 1000, AsOf: time.Now().Add(-time.Minute),
		Allowance: &loyalty.Allowance{Points: 100, Expires: time.Now().Add(time.Hour)}}
	ha.PutSnapshot(t, snap)
	hb.PutSnapshot(t, snap)

	// At A: two coffees of 50 use the allowance of 100; a third is refused.
	for i := range 2 {
		if status, body := ha.Post(t, "/v1/redeem", agenttest.Key(t), map[string]any{"card": card, "reward": "coffee"}, nil); status != 200 {
			t.Fatalf("redeem %d at A: got %d %s, want 200", i+1, status, body)
		}
	}
	if status, body := ha.Post(t, "/v1/redeem", agenttest.Key(t), map[string]any{"card": card, "reward": "coffee"}, nil); status != 422 {
		t.Fatalf("third redeem at A: got %d %s, want 422", status, body)
	}

	// B learns of A's redeems over the gossip (events, or the query).
	agenttest.Eventually(t, 10*time.Second, "till B records A's two redeems", func() bool {
		rs, err := hb.J.PeerRedeems(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		return len(rs) == 2
	})
	status, body := hb.Post(t, "/v1/redeem", agenttest.Key(t), map[string]any{"card": card, "reward": "coffee"}, nil)
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("redeem at B: %v in %s", err, body)
	}
	if status != 422 || p.Code != "offline_cap_reached" {
		t.Fatalf("redeem at B: got %d %s, want 422 offline_cap_reached", status, body)
	}
	var redeemed int
	for _, op := range append(ha.Ops(t), hb.Ops(t)...) {
		if op.Kind == loyalty.OpRedeem {
			redeemed += int(-op.Points)
		}
	}
	if redeemed != 100 {
		t.Errorf("store-wide offline redeems: got %d points, want 100 (the allowance)", redeemed)
	}
}

// A till that reaches neither the cloud nor another till applies the
// stricter isolated cap, even before its tags caught up with the outage,
// and the cashier reads why, as a refusal like the journal's own.
func TestIsolatedTillRefusesPastIsolatedCap(t *testing.T) {
	gossipKey := agenttest.WriteGossipKey(t, t.TempDir())
	a, b := agenttest.NewTill(t, "till-a", "127.0.0.23"), agenttest.NewTill(t, "till-b", "127.0.0.24")
	h := agenttest.StartStoreTill(t, a, []agenttest.Till{a, b}, nil, gossipKey, agenttest.Options{
		Config: func(c *config.Config) { c.Peers.IsolatedRedeemCap = 50 },
	})
	h.Uplink.Set(agent.SyncState{Online: false})
	// The peers' tags still say online (they follow the uplink once a
	// second): the agent's own finding that the cloud is out wins.
	h.Peers.P.SetState(peers.State{Online: true})
	const card = "barcode:2012345678902"
	h.PutSnapshot(t, loyalty.Snapshot{Card: agenttest.Card(t, card).Hash(agenttest.CardKey()), Member: "m2", Balance: 1000,
		AsOf: time.Now().Add(-time.Minute), Allowance: &loyalty.Allowance{Points: 500, Expires: time.Now().Add(time.Hour)}})
	if status, body := h.Post(t, "/v1/redeem", agenttest.Key(t), map[string]any{"card": card, "reward": "coffee"}, nil); status != 200 {
		t.Fatalf("first redeem: got %d %s, want 200 (within the isolated cap of 50)", status, body)
	}
	status, body := h.Post(t, "/v1/redeem", agenttest.Key(t), map[string]any{"card": card, "reward": "coffee"}, nil)
	if status != 422 || !strings.Contains(string(body), "offline_cap_reached") || !strings.Contains(string(body), "neither the loyalty service nor the other tills") {
		t.Errorf("second redeem: got %d %s, want 422 offline_cap_reached with the isolated till's message", status, body)
	}
}

// The gossip key is the whole store's secret: a key file others can read
// is refused with what to do.
func TestGossipKeyFileModeChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.ReadGossipKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("mode 0644: got %v, want a refusal saying chmod 600", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := agent.ReadGossipKey(path); err != nil || len(k) != 32 {
		t.Errorf("mode 0600: got %d bytes, %v; want the 32-byte key", len(k), err)
	}
	if err := os.WriteFile(path, []byte("c2hvcnQ="), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.ReadGossipKey(path); err == nil || !strings.Contains(err.Error(), "want 32") {
		t.Errorf("short key: got %v, want a refusal naming the size", err)
	}
}
