package scanner_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/devicestest"
	"github.com/tillpoint/tillpoint/devices/scanner"
	"github.com/tillpoint/tillpoint/hil-tests/ptypair"
)

type stroke struct {
	code  uint16
	shift bool
}

// typer types text as a keyboard-wedge scanner emulating keymap does:
// key presses and releases, Shift around capitals, Enter at the end.
func typer(t testing.TB, km scanner.Keymap) func(text string, gap time.Duration) []byte {
	keys := map[byte]stroke{}
	for code := uint16(1); code < 128; code++ {
		for _, sh := range []bool{false, true} {
			if c := km(code, sh); c != 0 {
				if _, ok := keys[c]; !ok || code < 71 { // prefer the main block to the keypad
					keys[c] = stroke{code, sh}
				}
			}
		}
	}
	return func(text string, gap time.Duration) []byte {
		var out bytes.Buffer
		at := time.Unix(1_700_000_000, 0)
		ev := func(code uint16, v int32) {
			out.Write(scanner.EncodeEvent(scanner.InputEvent{Time: at, Type: 1, Code: code, Value: v}))
			out.Write(scanner.EncodeEvent(scanner.InputEvent{Time: at, Type: 0})) // SYN_REPORT
		}
		for i := 0; i < len(text); i++ {
			k, ok := keys[text[i]]
			if !ok {
				t.Fatalf("no key for %q", text[i])
			}
			if k.shift {
				ev(42, 1)
			}
			ev(k.code, 1)
			ev(k.code, 0)
			if k.shift {
				ev(42, 0)
			}
			at = at.Add(gap)
		}
		ev(28, 1)
		ev(28, 0)
		return out.Bytes()
	}
}

func readLines(t *testing.T, raw []byte, d *scanner.KeyDecoder) []scanner.Line {
	t.Helper()
	var lines []scanner.Line
	err := scanner.ReadKeys(bytes.NewReader(raw), d, func(l scanner.Line) { lines = append(lines, l) })
	if !errors.Is(err, io.EOF) {
		t.Fatalf("ReadKeys = %v, want EOF at the end of the records", err)
	}
	return lines
}

func TestEventRecordIs24BytesAndRoundTrips(t *testing.T) {
	if scanner.EventSize != 24 {
		t.Skipf("struct input_event is %d bytes on this platform; 24 expected on 64-bit", scanner.EventSize)
	}
	e := scanner.InputEvent{Time: time.Unix(1_700_000_000, 123456000), Type: 1, Code: 30, Value: 1}
	b := scanner.EncodeEvent(e)
	want := []byte{0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0, 0x40, 0xe2, 0x01, 0, 0, 0, 0, 0, 1, 0, 30, 0, 1, 0, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("EncodeEvent = % x, want % x", b, want)
	}
	if got := scanner.DecodeEvent(b); !got.Time.Equal(e.Time) || got.Code != 30 || got.Value != 1 || got.Type != 1 {
		t.Errorf("DecodeEvent = %+v, want %+v", got, e)
	}
}

func TestKeyDecoderUSWithShiftAndAIM(t *testing.T) {
	raw := typer(t, scanner.KeymapUS())("]E04006381333931", 2*time.Millisecond)
	lines := readLines(t, raw, &scanner.KeyDecoder{})
	if len(lines) != 1 || string(lines[0].Data) != "]E04006381333931" {
		t.Fatalf("lines = %q, want one line ]E04006381333931", lineData(lines))
	}
	l, err := scanner.Parse(lines[0].Data)
	if err != nil || l.Symbology != devices.SymEAN13 {
		t.Errorf("Parse = %+v, %v; want EAN-13", l, err)
	}
	if lines[0].Keys != 16 || lines[0].MaxGap != 2*time.Millisecond {
		t.Errorf("line = %v, want 16 keys 2ms apart", lines[0])
	}
}

func lineData(ls []scanner.Line) []string {
	var out []string
	for _, l := range ls {
		out = append(out, string(l.Data))
	}
	return out
}

// Key codes are positions, read below the desktop's layout: the digits a
// US-configured scanner types come out as digits whatever layout the
// desktop uses (under AZERTY the same keys would have given "é&é").
func TestKeyDecoderIgnoresDesktopLayout(t *testing.T) {
	raw := typer(t, scanner.KeymapUS())("2012345678903", time.Millisecond)
	lines := readLines(t, raw, &scanner.KeyDecoder{})
	if len(lines) != 1 || string(lines[0].Data) != "2012345678903" {
		t.Fatalf("lines = %q, want 2012345678903", lineData(lines))
	}
}

// A scanner configured to emulate AZERTY types Shift+& for 1; with the
// matching keymap it decodes to the same label.
func TestKeyDecoderAZERTYScanner(t *testing.T) {
	raw := typer(t, scanner.KeymapFR())("2012345678903", time.Millisecond)
	lines := readLines(t, raw, &scanner.KeyDecoder{Keymap: scanner.KeymapFR()})
	if len(lines) != 1 || string(lines[0].Data) != "2012345678903" {
		t.Fatalf("lines = %q, want 2012345678903", lineData(lines))
	}
	us := readLines(t, raw, &scanner.KeyDecoder{})
	if len(us) == 1 && string(us[0].Data) == "2012345678903" {
		t.Errorf("an AZERTY scanner decoded with the US keymap gave the digits; the keymap test proves nothing")
	}
}

func TestKeyDecoderAltCodeGivesGroupSeparator(t *testing.T) {
	var raw bytes.Buffer
	at := time.Unix(1_700_000_000, 0)
	ev := func(code uint16, v int32) {
		raw.Write(scanner.EncodeEvent(scanner.InputEvent{Time: at, Type: 1, Code: code, Value: v}))
	}
	tp := typer(t, scanner.KeymapUS())
	head := tp("]C10109506000134352"+"21ABC", time.Millisecond)
	raw.Write(head[:len(head)-4*scanner.EventSize]) // without its Enter (press, SYN, release, SYN)
	ev(56, 1)                                       // Alt + keypad 0 0 2 9
	for _, k := range []uint16{82, 82, 80, 73} {
		ev(k, 1)
		ev(k, 0)
	}
	ev(56, 0)
	raw.Write(tp("17260101", time.Millisecond))
	lines := readLines(t, raw.Bytes(), &scanner.KeyDecoder{})
	want := "]C10109506000134352" + "21ABC\x1d17260101"
	if len(lines) != 1 || string(lines[0].Data) != want {
		t.Fatalf("lines = %q, want %q", lineData(lines), want)
	}
	if _, err := scanner.Parse(lines[0].Data); err != nil {
		t.Errorf("Parse of GS1 with GS = %v", err)
	}
}

func TestReadKeysPartialRecord(t *testing.T) {
	raw := typer(t, scanner.KeymapUS())("1", time.Millisecond)
	err := scanner.ReadKeys(bytes.NewReader(raw[:len(raw)-3]), &scanner.KeyDecoder{}, func(scanner.Line) {})
	if !errors.Is(err, scanner.ErrShortEvent) {
		t.Errorf("ReadKeys of a cut record = %v, want ErrShortEvent", err)
	}
}

// openPlain opens a pty end as the event device (a pty passes raw bytes;
// these machines have no /dev/uinput to make a real evdev node).
func openPlain(path string) (io.ReadCloser, error) { return os.OpenFile(path, os.O_RDONLY, 0) }

func TestHIDScannerThroughDevicePathTellsScanFromTyping(t *testing.T) {
	p := ptypair.New(t)
	cfg := scanner.DefaultHIDConfig(p.B)
	cfg.OpenDevice = openPlain
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 20*time.Millisecond
	evs := &devicestest.Events{}
	h := scanner.NewHID(cfg, evs)
	if err := h.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	evs.Wait(t, wait, "ready", okCount(1))

	tp := typer(t, scanner.KeymapUS())
	f, err := p.OpenA()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A person typing a number on a keyboard (120 ms between keys), then a scan.
	if _, err := f.Write(append(tp("2012345678903", 120*time.Millisecond), tp("]E04006381333931", time.Millisecond)...)); err != nil {
		t.Fatal(err)
	}
	got := devicestest.Scans(evs.Wait(t, wait, "one scan", scanCount(1)))
	if got[0].Label != "4006381333931" {
		t.Errorf("first scan = %s, want …3931 (typed input is not a scan)", devices.Redact(got[0].Label))
	}

	// Unplug and replug.
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	evs.Wait(t, wait, "disconnected", func(e []devices.Event) bool {
		return devicestest.Count(e, devicestest.IsHealth(devices.CodeDisconnected)) > 0
	})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs.Wait(t, wait, "ready again", okCount(2))
	writeA(t, p, string(tp("]E02012345678903", time.Millisecond)))
	evs.Wait(t, wait, "a scan after replug", scanCount(2))
	if n := len(devicestest.Scans(evs.All())); n != 2 {
		t.Errorf("scans = %d, want 2", n)
	}
}

func TestOpenEvdevRefusesANonInputDevice(t *testing.T) {
	p := ptypair.New(t)
	rc, err := scanner.OpenEvdev(p.B)
	if err == nil {
		rc.Close()
		t.Fatal("OpenEvdev on a pty = nil error, want the grab to fail")
	}
}

func FuzzReadKeys(f *testing.F) {
	f.Add(scanner.EncodeEvent(scanner.InputEvent{Type: 1, Code: 30, Value: 1}))
	f.Add(append(scanner.EncodeEvent(scanner.InputEvent{Type: 1, Code: 56, Value: 1}), scanner.EncodeEvent(scanner.InputEvent{Type: 1, Code: 56, Value: 0})...))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d := &scanner.KeyDecoder{EndTab: len(raw)%2 == 0}
		_ = scanner.ReadKeys(bytes.NewReader(raw), d, func(l scanner.Line) {
			if len(l.Data) > scanner.MaxScan {
				t.Fatalf("line of %d bytes, limit %d", len(l.Data), scanner.MaxScan)
			}
			_, _ = scanner.Parse(l.Data)
		})
	})
}
