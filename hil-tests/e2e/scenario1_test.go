package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/pcscd"
	"github.com/tillpoint/tillpoint/hil-tests/vcard"
)

// nfcUID is the loyalty card the NFC scenarios tap: a 7-byte NTAG-style UID.
var nfcUID = []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}

const nfcUIDHex = "04A1B2C3D4E5F6"

// Scenario 1: a card tapped on the NFC reader (real pcscd, the vpcd
// driver, the Go virtual card) opens the session; the POS checks out
// through the local API; the receipt printed on the network printer (TCP
// 9100) and decoded back from ESC/POS shows the points, balance and tier.
// A sale without a card prints a QR code that reads back as the till's
// signed claim for its points. The UID never appears in the agent's log.
func TestScenario1_NFCTapCheckoutPrintsReceipt(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStore(t, tillOpts{tcpPrinter: true, nfcReader: env.Reader})
	tl := s.tills[0]
	requireNFC(t, tl)
	waitDevice(ctx, t, tl, "printer", "ok", 20*time.Second)

	if r := tl.post(ctx, t, "/v1/enroll", "s1-enroll", map[string]any{"card": "nfc:" + nfcUIDHex}); r.Status != 200 {
		t.Fatalf("enroll the card at the till: got %v, want 200", r)
	}
	tl.waitReceipts(t, 1, 30*time.Second)
	waitSynced(ctx, t, s, 30*time.Second)

	env.Insert(t, &vcard.Card{UID: nfcUID})
	waitSession(ctx, t, tl, "nfc", nfcUIDHex[len(nfcUIDHex)-4:], "")
	noClearCard(t, tl, nfcUIDHex)
	checkoutOnSession(ctx, t, tl, "s1-checkout", nfcUIDHex[len(nfcUIDHex)-4:], 1)
	checkoutWithoutCard(ctx, t, tl, "s1-nocard", 2)
	noClearCard(t, tl, nfcUIDHex)
}

// Scenario 6 (card side): the virtual card's connection to vpcd drops, as
// when the virtual card process is restarted, and comes back. The agent
// keeps running, and the next tap opens a new session.
func TestScenario6_NFCCardSideReconnects(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStore(t, tillOpts{nfcReader: env.Reader})
	tl := s.tills[0]
	requireNFC(t, tl)
	pid := tl.agent.Proc.Pid()

	sess := env.Insert(t, &vcard.Card{UID: nfcUID})
	first := waitSession(ctx, t, tl, "nfc", nfcUIDHex[len(nfcUIDHex)-4:], "")
	if err := env.Remove(sess); err != nil { // the card process goes away
		t.Fatal(err)
	}
	if r, err := tl.agent.Do(ctx, "DELETE", "/v1/session", "", nil); err != nil || r.Status >= 300 {
		t.Fatalf("clear the session: %v %v", r, err)
	}
	env.Insert(t, &vcard.Card{UID: nfcUID}) // ...and comes back
	waitSession(ctx, t, tl, "nfc", nfcUIDHex[len(nfcUIDHex)-4:], first.ID)
	waitDevice(ctx, t, tl, "nfc", "ok", 20*time.Second)
	select {
	case <-tl.agent.Proc.Done():
		t.Fatalf("the agent exited: %v", tl.agent.Proc.Err())
	default:
	}
	if got := tl.agent.Proc.Pid(); got != pid {
		t.Errorf("agent pid: got %d, want %d (not restarted)", got, pid)
	}
}
