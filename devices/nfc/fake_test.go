package nfc_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/devicestest"
	"github.com/tillpoint/tillpoint/devices/nfc"
)

// step is one scripted answer of GetStatusChange.
type step struct {
	readers []string                   // ListReaders from now on, if set
	set     map[string]scard.StateFlag // event states this call reports
	card    []byte                     // the UID of the card on the reader from now on
	err     error
}

// fakePCSC plays a script of reader events, the way pcsc-lite reports
// them, and records the current states the watcher passes in.
type fakePCSC struct {
	mu         sync.Mutex
	steps      []step
	pos        int
	readers    []string
	card       []byte
	seen       [][]scard.ReaderState
	cancel     chan struct{}
	establish  int
	served     chan struct{} // closed when the script is done
	servedOnce sync.Once
}

func newFake(readers []string, steps ...step) *fakePCSC {
	return &fakePCSC{readers: readers, steps: steps, cancel: make(chan struct{}, 1), served: make(chan struct{})}
}

func (f *fakePCSC) Establish() (nfc.Context, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.establish++
	return f, nil
}

func (f *fakePCSC) ListReaders() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.readers) == 0 {
		return nil, scard.ErrNoReadersAvailable
	}
	return append([]string(nil), f.readers...), nil
}

func (f *fakePCSC) GetStatusChange(rs []scard.ReaderState, _ time.Duration) error {
	f.mu.Lock()
	f.seen = append(f.seen, append([]scard.ReaderState(nil), rs...))
	if f.pos >= len(f.steps) {
		f.mu.Unlock()
		f.servedOnce.Do(func() { close(f.served) })
		<-f.cancel
		return scard.ErrCancelled
	}
	s := f.steps[f.pos]
	f.pos++
	if s.readers != nil {
		f.readers = s.readers
	}
	if s.card != nil {
		f.card = s.card
	}
	f.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	for i := range rs {
		if v, ok := s.set[rs[i].Reader]; ok {
			rs[i].EventState = v | scard.StateChanged
		} else {
			rs[i].EventState = rs[i].CurrentState
		}
	}
	return nil
}

func (f *fakePCSC) Connect(string) (nfc.Card, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &fakeCard{rsp: append(append([]byte(nil), f.card...), 0x90, 0x00)}, nil
}

func (f *fakeCard) Disconnect() error { return nil }

func (f *fakePCSC) Cancel() error {
	select {
	case f.cancel <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakePCSC) Release() error { return nil }

func runFake(t *testing.T, f *fakePCSC) (*nfc.Watcher, *devicestest.Events) {
	t.Helper()
	return runFakeLog(t, f, nil)
}

func runFakeLog(t *testing.T, f *fakePCSC, logger *slog.Logger) (*nfc.Watcher, *devicestest.Events) {
	t.Helper()
	evs := &devicestest.Events{}
	w := nfc.NewWatcher(nfc.Config{Establish: f.Establish, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Logger: logger}, evs)
	if err := w.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	select {
	case <-f.served:
	case <-time.After(10 * time.Second):
		t.Fatalf("script not played through: at step %d of %d", f.pos, len(f.steps))
	}
	return w, evs
}

const (
	empty   = scard.StateEmpty
	present = scard.StatePresent
)

func count(n uint32) scard.StateFlag { return scard.StateFlag(n << 16) }

func TestScriptedTapsSwapsAndMissedTaps(t *testing.T) {
	cardA, cardB := []byte{0x04, 1, 1, 1, 1, 1, 1}, []byte{0x04, 2, 2, 2, 2, 2, 2}
	f := newFake([]string{"R"},
		step{set: map[string]scard.StateFlag{"R": empty | count(1)}},
		step{set: map[string]scard.StateFlag{"R": present | count(2)}, card: cardA},
		step{set: map[string]scard.StateFlag{"R": present | scard.StateInuse | count(2)}}, // our own connect: same card
		step{set: map[string]scard.StateFlag{"R": present | count(4)}, card: cardB},       // A left, B came between two calls
		step{set: map[string]scard.StateFlag{"R": empty | count(5)}},                      // B left
		step{set: map[string]scard.StateFlag{"R": empty | count(7)}},                      // a tap came and went unseen
	)
	_, evs := runFake(t, f)
	all := evs.All()
	taps := devicestest.Taps(all)
	if len(taps) != 2 || string(taps[0].UID) != string(cardA) || string(taps[1].UID) != string(cardB) {
		t.Fatalf("taps = %v, want A then B, once each", devicestest.Summary(all))
	}
	errs := devicestest.ReadErrors(all)
	if len(errs) != 1 || errs[0].Code != devices.CodeCardRemoved {
		t.Fatalf("read errors = %v, want one card_removed for the unseen tap", devicestest.Summary(all))
	}
	// The state passed in is the last event state, never UNAWARE after
	// the first call for a reader (UNAWARE every time is a busy loop).
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 1; i < len(f.seen); i++ {
		prev, cur := f.seen[i-1], f.seen[i]
		for j := range cur {
			if j < len(prev) && cur[j].Reader == prev[j].Reader {
				want := f.eventAfter(i-1, prev[j])
				if cur[j].CurrentState != want {
					t.Errorf("call %d reader %q current state %#x, want the last event state %#x", i, cur[j].Reader, cur[j].CurrentState, want)
				}
			}
		}
	}
}

// eventAfter is what the fake reported for rs at call i, without CHANGED.
func (f *fakePCSC) eventAfter(i int, rs scard.ReaderState) scard.StateFlag {
	if i < len(f.steps) {
		if v, ok := f.steps[i].set[rs.Reader]; ok {
			return v
		}
	}
	return rs.CurrentState
}

func TestScriptedReaderUnplugAndReplug(t *testing.T) {
	f := newFake([]string{"R"},
		step{set: map[string]scard.StateFlag{"R": empty}},
		step{readers: []string{}, set: map[string]scard.StateFlag{"R": scard.StateUnknown, nfc.PnPReader: count(1)}},
		step{readers: []string{"R"}, set: map[string]scard.StateFlag{nfc.PnPReader: count(2)}},
		step{set: map[string]scard.StateFlag{"R": present | count(1)}, card: []byte{0xDE, 0xAD, 0xBE, 0xEF}},
	)
	w, evs := runFake(t, f)
	all := evs.All()
	var codes []devices.Code
	for _, h := range devicestest.Healths(all) {
		if h.Device.Path == "R" {
			codes = append(codes, h.Code)
		}
	}
	want := []devices.Code{devices.CodeOK, devices.CodeNoReader, devices.CodeOK}
	if len(codes) != len(want) || codes[0] != want[0] || codes[1] != want[1] || codes[2] != want[2] {
		t.Errorf("reader health = %v, want %v", codes, want)
	}
	if len(devicestest.Taps(all)) != 1 {
		t.Errorf("taps = %v, want one after the replug", devicestest.Summary(all))
	}
	for _, h := range devicestest.Healths(all) {
		if h.Code == devices.CodeNoReader && h.Reason != "NFC reader unplugged; plug it back in" {
			t.Errorf("reason = %q, want the cashier's message", h.Reason)
		}
	}
	if hs := w.Health(); len(hs) != 2 || hs[1].Code != devices.CodeOK {
		t.Errorf("Health() = %v, want service and reader ok", hs)
	}
}

func TestScriptedServiceStoppedReestablishes(t *testing.T) {
	f := newFake([]string{"R"},
		step{set: map[string]scard.StateFlag{"R": empty}},
		step{err: scard.ErrServiceStopped},
		step{set: map[string]scard.StateFlag{"R": present | count(1)}, card: []byte{0xDE, 0xAD, 0xBE, 0xEF}},
	)
	_, evs := runFake(t, f)
	f.mu.Lock()
	n := f.establish
	f.mu.Unlock()
	if n != 2 {
		t.Errorf("contexts established = %d, want 2 (again after SERVICE_STOPPED)", n)
	}
	all := evs.All()
	if devicestest.Count(all, devicestest.IsHealth(devices.CodeNoService)) == 0 {
		t.Errorf("no no_service health in %v", devicestest.Summary(all))
	}
	if len(devicestest.Taps(all)) != 1 {
		t.Errorf("taps = %v, want one after recovery", devicestest.Summary(all))
	}
}

// TestLogsNeverShowTheUID defends invariant 7: a tap is logged, but only
// with the UID's last 4 hex digits.
func TestLogsNeverShowTheUID(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFake([]string{"R"},
		step{set: map[string]scard.StateFlag{"R": present | count(1)}, card: []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}},
	)
	_, evs := runFakeLog(t, f, logger)
	if len(devicestest.Taps(evs.All())) != 1 {
		t.Fatalf("no tap")
	}
	out := strings.ToUpper(buf.String())
	if !strings.Contains(out, "E5F6") {
		t.Fatalf("the tap was not logged (redacted) at all: %s", out)
	}
	if strings.Contains(out, "04A1B2C3") || strings.Contains(out, "A1B2C3D4") {
		t.Errorf("log shows the UID: %s", out)
	}
}
