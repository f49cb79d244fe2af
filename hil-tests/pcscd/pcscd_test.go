package pcscd_test

import (
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/tillpoint/tillpoint/hil-tests/pcscd"
	"github.com/tillpoint/tillpoint/hil-tests/vcard"
)

func TestVirtualCardAnswersGetDataThroughPcscd(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t)
	card := &vcard.Card{UID: []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}}
	env.Insert(t, card)
	sc, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Release()
	rs := []scard.ReaderState{{Reader: env.Reader, CurrentState: scard.StateUnaware}}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := sc.GetStatusChange(rs, time.Second); err != nil && err != scard.ErrTimeout {
			t.Fatal(err)
		}
		if rs[0].EventState&scard.StatePresent != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("card not present; reader state %#x", rs[0].EventState)
		}
		rs[0].CurrentState = rs[0].EventState &^ scard.StateChanged
	}
	c, err := sc.Connect(env.Reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(scard.LeaveCard)
	rsp, err := c.Transmit([]byte{0xFF, 0xCA, 0x00, 0x00, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte(nil), card.UID...), 0x90, 0x00)
	if string(rsp) != string(want) {
		t.Fatalf("GET DATA = % X, want % X", rsp, want)
	}
}
