package e2e_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// basket is a small sale the scenarios ring up: EUR 22.40 (amounts are
// line totals).
func basket() map[string]any {
	return map[string]any{"currency": "EUR", "lines": []any{
		map[string]any{"sku": "coffee-beans", "quantity": 2, "amount": 1790},
		map[string]any{"sku": "croissant", "quantity": 3, "amount": 450},
	}}
}

// basketPoints is what basket earns under harness.Rules: one point per
// whole euro of EUR 22.40, computed here by hand.
const basketPoints = 22

// checkoutOnSession rings up a basket for the card of the open session (the
// POS sends no card), and checks the reply and the printed receipt agree:
// the card's last digits, the points earned, the balance and the tier.
// printedBefore is how many receipts the printer had printed.
func checkoutOnSession(ctx context.Context, t *testing.T, tl *till, key, last4 string, printedBefore int) opReply {
	t.Helper()
	requireRules(ctx, t, tl)
	r := tl.post(ctx, t, "/v1/checkout", key, map[string]any{"basket": basket(), "receipt": "R-" + key})
	var o opReply
	if r.Status != 200 || r.Decode(&o) != nil {
		t.Fatalf("checkout on the open session: got %v, want 200", r)
	}
	if o.Points != basketPoints {
		t.Errorf("points earned for a EUR 22.40 basket under harness.Rules (1 point per whole euro): got %d, want %d", o.Points, basketPoints)
	}
	if !o.Member.Known {
		t.Errorf("member of the card enrolled at this till: got unknown, want known with a balance and a tier")
	}
	if o.Balance != o.Points {
		t.Errorf("balance after the first sale of a new member: got %d, want the %d points earned", o.Balance, o.Points)
	}
	if o.Tier != "Bronze" {
		t.Errorf("tier of a member with %d points: got %q, want Bronze (Silver starts at 1,000)", o.Balance, o.Tier)
	}
	docs := tl.waitReceipts(t, printedBefore+1, 30*time.Second)
	text := strings.Join(docs[printedBefore].Strings(), "\n")
	for _, want := range []string{last4, strconv.FormatInt(o.Points, 10), strconv.FormatInt(o.Balance, 10), o.Tier} {
		if want != "" && !strings.Contains(text, want) {
			t.Errorf("printed receipt: got\n%s\nwant it to show %q", text, want)
		}
	}
	return o
}

// noClearCard fails when the agent's log holds the card value in the clear
// (invariant 7).
func noClearCard(t *testing.T, tl *till, value string) {
	t.Helper()
	if out := tl.agent.Proc.Output(); strings.Contains(out, value) {
		i := strings.Index(out, value)
		t.Errorf("agent log holds the card %s in the clear (invariant 7), e.g. %q", fmt.Sprintf("…%s", value[len(value)-4:]), out[max(0, i-80):min(len(out), i+len(value)+20)])
	}
}

// checkoutWithoutCard rings up a sale with no card presented: the receipt
// must carry a QR code whose payload is the till's signed claim for that
// sale's points, readable back from the printed ESC/POS.
func checkoutWithoutCard(ctx context.Context, t *testing.T, tl *till, key string, printedBefore int) {
	t.Helper()
	if r, err := tl.agent.Do(ctx, "DELETE", "/v1/session", "", nil); err != nil || r.Status >= 300 {
		t.Fatalf("clear the session: %v %v", r, err)
	}
	r := tl.post(ctx, t, "/v1/checkout", key, map[string]any{"basket": basket(), "receipt": "R-" + key})
	var o opReply
	if r.Status != 200 || r.Decode(&o) != nil {
		t.Fatalf("checkout without a card: got %v, want 200", r)
	}
	docs := tl.waitReceipts(t, printedBefore+1, 30*time.Second)
	doc := docs[printedBefore]
	var qr []string
	for _, c := range doc.Codes {
		if c.Kind == "QR" {
			qr = append(qr, c.Data)
		}
	}
	if len(qr) != 1 {
		t.Fatalf("receipt of a sale without a card: got %d QR codes, want 1 (the claim)\n%s", len(qr), doc.Text(42))
	}
	pub := tl.term.State(t).Key.Public().(ed25519.PublicKey)
	claim, err := loyalty.VerifyClaim(pub, qr[0], time.Now())
	if err != nil {
		t.Fatalf("printed QR payload %q: %v, want a claim signed by the till's key", qr[0], err)
	}
	if claim.Op.String() != o.OpID || int64(claim.Points) != basketPoints {
		t.Errorf("printed claim: got op %s for %d points, want op %s for %d", claim.Op, claim.Points, o.OpID, basketPoints)
	}
}
