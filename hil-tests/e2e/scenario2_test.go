package e2e_test

import (
	"context"
	"testing"
	"time"
)

// Scenario 2: a loyalty card scanned on the serial scanner (a socat pty)
// opens the session; the POS checks out without sending a card; the
// receipt, printed on the serial printer (another pty) and decoded back
// from ESC/POS, shows the points, balance and tier; a sale without a card
// prints a QR code that reads back as the till's signed claim. The card
// number never appears in the agent's log.
func TestScenario2_SerialScanCheckoutPrintsReceipt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStore(t, tillOpts{scanner: true, serialPrinter: true})
	tl := s.tills[0]
	const card = "2012345678903"
	waitDevice(ctx, t, tl, "scanner", "ok", 20*time.Second)
	waitDevice(ctx, t, tl, "printer", "ok", 20*time.Second)

	if r := tl.post(ctx, t, "/v1/enroll", "s2-enroll", map[string]any{"card": "barcode:" + card}); r.Status != 200 {
		t.Fatalf("enroll the card at the till: got %v, want 200", r)
	}
	tl.waitReceipts(t, 1, 30*time.Second) // the welcome receipt
	waitSynced(ctx, t, s, 30*time.Second) // the cloud knows the member, and says so to the till

	tl.scan(t, card)
	sess := waitSession(ctx, t, tl, "scanner", card[len(card)-4:], "")
	if sess.Card == "barcode:"+card {
		t.Errorf("session card: got it in the clear, want it masked")
	}
	noClearCard(t, tl, card)
	checkoutOnSession(ctx, t, tl, "s2-checkout", card[len(card)-4:], 1)
	checkoutWithoutCard(ctx, t, tl, "s2-nocard", 2)
	noClearCard(t, tl, card)
}
