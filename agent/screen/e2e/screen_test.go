package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/agent/screen"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/peers"
)

const chromium = "/usr/bin/chromium"

// need skips the test when a tool is missing, or fails it under TILLPOINT_HIL=require.
func need(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		msg := fmt.Sprintf("cashier screen browser test needs %s; run 'make deps' (Debian chromium, node, npm ci in agent/screen)", what)
		if os.Getenv("TILLPOINT_HIL") == "require" {
			t.Fatal(msg + " (TILLPOINT_HIL=require)")
		}
		t.Skip(msg)
	}
	if _, err := os.Stat(chromium); err != nil {
		missing(chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node")
	}
	if _, err := os.Stat(filepath.Join("..", "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core in agent/screen/node_modules")
	}
	return node
}

func TestCashierScreenInChromium(t *testing.T) {
	node := need(t)
	// Till A shows the screen; till B is another till of its store, over
	// real serf gossip.
	gossipKey := agenttest.WriteGossipKey(t, t.TempDir())
	// Till C is in the roster but never starts.
	a, b := agenttest.NewTill(t, "till-a", "127.0.0.51"), agenttest.NewTill(t, "till-b", "127.0.0.52")
	all := []agenttest.Till{a, b, agenttest.NewTill(t, "till-c", "127.0.0.53")}
	h := agenttest.StartStoreTill(t, a, all, nil, gossipKey, agenttest.Options{Screen: screen.Handler()})
	h.Uplink.Set(agent.SyncState{Online: true})
	addrA, err := h.Peers.P.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}
	hb := agenttest.StartStoreTill(t, b, all, map[string]string{a.ID: addrA}, gossipKey, agenttest.Options{})
	hb.Peers.P.SetState(peers.State{Online: true})
	agenttest.Eventually(t, 10*time.Second, "till A sees till B alive", func() bool { return h.Peers.P.AlivePeers() == 1 })
	card := agenttest.Card(t, "nfc:04A1B2C3D4E5F6")
	h.PutSnapshot(t, loyalty.Snapshot{Card: card.Hash(agenttest.CardKey()), Member: "m1", Balance: 250, Tier: "Silver",
		NextTier: "Gold", ToNextTier: 750, AsOf: time.Now().Add(-time.Minute)})
	basket := loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "wine", Category: "drinks", Quantity: 1, Amount: 1299}}}

	ctx := context.Background()
	steps := map[string]func() error{
		"tap": func() error { _, err := h.Agent.PresentCard(ctx, card, agent.SourceNFC); return err },
		"quote": func() error {
			_, err := h.Agent.QuoteBasket(ctx, basket)
			return err
		},
		"outage": func() error {
			// The uplink's own backlog figure is ignored: the screen shows
			// the journal's count, 0 now and 1 after the checkout.
			h.Uplink.Set(agent.SyncState{Online: false, BacklogOps: 3, OldestOp: time.Now().Add(-time.Minute), LastError: "connection refused"})
			return nil
		},
		"checkout": func() error {
			_, err := h.Agent.Checkout(ctx, "screen-checkout", agent.CheckoutRequest{Basket: basket})
			return err
		},
		"recover":     func() error { h.Uplink.Set(agent.SyncState{Online: true}); return nil },
		"peeroffline": func() error { hb.Peers.P.SetState(peers.State{Online: false, Backlog: 4}); return nil },
		"peerleave":   func() error { return hb.Peers.Shutdown(ctx) },
		"paperout": func() error {
			h.Agent.SetDeviceHealth(agent.DeviceHealth{Device: "printer:tcp:127.0.0.1:9100", Kind: "printer", State: "error", Power: "online", Code: "paper_out", Reason: "Printer: paper out"})
			return nil
		},
	}
	control := http.NewServeMux()
	for name, fn := range steps {
		control.HandleFunc("POST /"+name, func(w http.ResponseWriter, _ *http.Request) {
			if err := fn(); err != nil {
				http.Error(w, err.Error(), 500)
			}
		})
	}
	ctl := startServer(t, control)

	runCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	args := []string{"screen.mjs", h.URL + "/", ctl}
	if dir := os.Getenv("TILLPOINT_SCREENSHOTS"); dir != "" {
		args = append(args, dir)
	}
	cmd := exec.CommandContext(runCtx, node, args...)
	out, err := cmd.CombinedOutput()
	t.Logf("browser:\n%s", out)
	if err != nil {
		t.Fatalf("the cashier screen failed in chromium: %v", err)
	}
}
