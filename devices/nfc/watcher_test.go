package nfc_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/devicestest"
	"github.com/tillpoint/tillpoint/devices/nfc"
	"github.com/tillpoint/tillpoint/hil-tests/pcscd"
	"github.com/tillpoint/tillpoint/hil-tests/vcard"
)

const wait = 15 * time.Second

func startWatcher(t *testing.T, env *pcscd.Env) *devicestest.Events {
	t.Helper()
	evs := &devicestest.Events{}
	w := nfc.NewWatcher(nfc.Config{Readers: []string{pcscd.ReaderPrefix}, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, evs)
	if err := w.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	evs.Wait(t, wait, "reader ready", readerReady(env.Reader, 1))
	return evs
}

func readerReady(reader string, n int) func([]devices.Event) bool {
	return func(evs []devices.Event) bool {
		return devicestest.Count(evs, func(e devices.Event) bool {
			h, ok := e.(devices.HealthEvent)
			return ok && h.Device.Path == reader && h.Code == devices.CodeOK
		}) >= n
	}
}

func tapCount(n int) func([]devices.Event) bool {
	return func(evs []devices.Event) bool { return len(devicestest.Taps(evs)) >= n }
}

func TestOneTapOneEventForEachUIDSize(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t)
	evs := startWatcher(t, env)
	uids := [][]byte{
		{0xDE, 0xAD, 0xBE, 0xEF},
		{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66},
		{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99},
	}
	var sessions []*vcard.Session
	for i, uid := range uids {
		s := env.Insert(t, &vcard.Card{UID: uid})
		sessions = append(sessions, s)
		evs.Wait(t, wait, fmt.Sprintf("tap %d", i+1), tapCount(i+1))
		if err := env.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
	taps := devicestest.Taps(evs.All())
	if len(taps) != len(uids) {
		t.Fatalf("got %d taps, want %d (one per card)", len(taps), len(uids))
	}
	for i, tap := range taps {
		if string(tap.UID) != string(uids[i]) || tap.RandomUID {
			t.Errorf("tap %d = %s, want the card's %d-byte UID", i, tap, len(uids[i]))
		}
		if tap.Device.Path != env.Reader || tap.Device.Kind != devices.KindNFC {
			t.Errorf("tap %d from %v, want %s", i, tap.Device, env.Reader)
		}
		if got := sessions[i].Reads(); got != 1 {
			t.Errorf("card %d read %d times while on the reader, want 1", i, got)
		}
	}
}

func TestCardLeftOnReaderIsNotReadAgain(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t)
	evs := startWatcher(t, env)
	s := env.Insert(t, &vcard.Card{UID: []byte{0x04, 1, 2, 3, 4, 5, 6}})
	evs.Wait(t, wait, "first tap", tapCount(1))
	// Another reader event (the card taken away) must be the next thing
	// the watcher sees, not a second read of the card that stayed.
	if err := env.Remove(s); err != nil {
		t.Fatal(err)
	}
	s2 := env.Insert(t, &vcard.Card{UID: []byte{0x04, 9, 9, 9, 9, 9, 9}})
	evs.Wait(t, wait, "second tap", tapCount(2))
	taps := devicestest.Taps(evs.All())
	if len(taps) != 2 || taps[1].UID[1] != 9 {
		t.Fatalf("taps = %v, want the first card once, then the second", devicestest.Summary(evs.All()))
	}
	if s.Reads() != 1 || s2.Reads() != 1 {
		t.Errorf("reads = %d, %d; want 1 each", s.Reads(), s2.Reads())
	}
}

func TestRandomUIDIsReportedAsSuch(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t)
	evs := startWatcher(t, env)
	env.Insert(t, &vcard.Card{RandomUID: true})
	tap := devicestest.Taps(evs.Wait(t, wait, "tap", tapCount(1)))[0]
	if !tap.RandomUID || len(tap.UID) != 4 || tap.UID[0] != 0x08 {
		t.Errorf("tap = %s, want a random 4-byte UID starting 08", tap)
	}
}

func TestErrorStatusWordIsAReadErrorNotATap(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t)
	evs := startWatcher(t, env)
	env.Insert(t, &vcard.Card{UID: []byte{0xCA, 0xFE, 0xBA, 0xBE}, SW: 0x6A81})
	all := evs.Wait(t, wait, "read error", func(e []devices.Event) bool { return len(devicestest.ReadErrors(e)) > 0 })
	re := devicestest.ReadErrors(all)[0]
	if re.Code != devices.CodeReadFailed || !strings.Contains(re.Err.Error(), "6A81") {
		t.Errorf("read error = %v (%v), want read_failed with status 6A81", re, re.Err)
	}
	if n := len(devicestest.Taps(all)); n != 0 {
		t.Errorf("got %d taps, want 0", n)
	}
}

func TestCardPulledAwayMidReadIsHandled(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t)
	evs := startWatcher(t, env)
	env.Insert(t, &vcard.Card{UID: []byte{0xCA, 0xFE, 0xBA, 0xBE}, PullOnRead: true})
	all := evs.Wait(t, wait, "read error", func(e []devices.Event) bool { return len(devicestest.ReadErrors(e)) > 0 })
	re := devicestest.ReadErrors(all)[0]
	if re.Code != devices.CodeCardRemoved {
		t.Errorf("read error = %v (%v), want card_removed", re, re.Err)
	}
	// The watcher still works.
	env.Insert(t, &vcard.Card{UID: []byte{0x04, 1, 2, 3, 4, 5, 6}})
	evs.Wait(t, wait, "a tap after the pulled card", tapCount(1))
}

func TestPcscdRestartIsReportedAndRecovered(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t)
	evs := startWatcher(t, env)
	if err := env.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Start() })
	evs.Wait(t, wait, "no_service health", func(e []devices.Event) bool {
		return devicestest.Count(e, func(e devices.Event) bool {
			h, ok := e.(devices.HealthEvent)
			return ok && h.Device.Path == env.Reader && h.Code == devices.CodeNoService
		}) > 0
	})
	if err := env.Start(); err != nil {
		t.Fatal(err)
	}
	evs.Wait(t, wait, "reader ready again", readerReady(env.Reader, 2))
	env.Insert(t, &vcard.Card{UID: []byte{0x04, 1, 2, 3, 4, 5, 6}})
	evs.Wait(t, wait, "a tap after the restart", tapCount(1))
}
