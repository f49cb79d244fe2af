package scanner_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/devicestest"
	"github.com/tillpoint/tillpoint/devices/scanner"
	"github.com/tillpoint/tillpoint/hil-tests/ptypair"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
)

const wait = 10 * time.Second

// openScanner starts a serial scanner on pair's B end and closes it when
// the test ends.
func openScanner(t *testing.T, path string, edit func(*scanner.Config)) (*scanner.Serial, *devicestest.Events) {
	t.Helper()
	cfg := scanner.DefaultConfig(path)
	cfg.Mode.BaudRate = 115200
	cfg.MinBackoff = time.Millisecond
	cfg.MaxBackoff = 20 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	evs := &devicestest.Events{}
	s := scanner.NewSerial(cfg, evs)
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, evs
}

func okCount(n int) func([]devices.Event) bool {
	return func(evs []devices.Event) bool {
		return devicestest.Count(evs, devicestest.IsHealth(devices.CodeOK)) >= n
	}
}

func scanCount(n int) func([]devices.Event) bool {
	return func(evs []devices.Event) bool { return len(devicestest.Scans(evs)) >= n }
}

func writeA(t *testing.T, p *ptypair.Pair, s string) {
	t.Helper()
	f, err := p.OpenA()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatalf("write to the scanner's pty: %v", err)
	}
}

func TestSerialBurstOf50ArrivesCompleteAndInOrder(t *testing.T) {
	p := ptypair.New(t)
	_, evs := openScanner(t, p.B, nil)
	evs.Wait(t, wait, "scanner ready", okCount(1))

	var in strings.Builder
	var want []string
	for i := range 50 {
		var label string
		switch i % 3 {
		case 0:
			base := fmt.Sprintf("2%011d", i)
			cd, _ := scanner.CheckDigit(base)
			label = base + string(cd)
			in.WriteString("]E0" + label + "\r")
		case 1:
			base := fmt.Sprintf("8018%017d", 1000+i)
			cd, _ := scanner.CheckDigit(base[4:])
			label = base + string(cd)
			in.WriteString("]C1" + label + "\r\n")
		default:
			label = fmt.Sprintf("LOY-%06d", i)
			in.WriteString(label + "\r")
		}
		want = append(want, label)
	}
	writeA(t, p, in.String())

	got := devicestest.Scans(evs.Wait(t, wait, "50 scans", scanCount(50)))
	if len(got) != 50 {
		t.Fatalf("got %d scans, want 50", len(got))
	}
	for i, s := range got {
		if s.Label != want[i] {
			t.Fatalf("scan %d = %s, want %s (order or content lost)", i, devices.Redact(s.Label), devices.Redact(want[i]))
		}
	}
	if got[0].Symbology != devices.SymEAN13 || got[0].AIM != "]E0" || string(got[0].Data) != "]E0"+want[0] {
		t.Errorf("scan 0 = %v %q data %d bytes, want EAN-13 ]E0 with the AIM in Data", got[0].Symbology, got[0].AIM, len(got[0].Data))
	}
	if got[1].Symbology != devices.SymGS1_128 {
		t.Errorf("scan 1 symbology = %v, want GS1-128", got[1].Symbology)
	}
	if n := len(devicestest.ReadErrors(evs.All())); n != 0 {
		t.Errorf("got %d read errors, want 0", n)
	}
}

func TestSerialMisreadIsAnErrorNotAScan(t *testing.T) {
	p := ptypair.New(t)
	_, evs := openScanner(t, p.B, nil)
	evs.Wait(t, wait, "scanner ready", okCount(1))
	writeA(t, p, "]E04006381333932\r]E04006381333931\r")
	all := evs.Wait(t, wait, "one scan", scanCount(1))
	errs := devicestest.ReadErrors(all)
	if len(errs) != 1 || errs[0].Code != devices.CodeMisread {
		t.Fatalf("read errors = %v, want one misread", devicestest.Summary(all))
	}
	if strings.Contains(errs[0].Reason+errs[0].Err.Error(), "4006381333932") {
		t.Errorf("misread error shows the scanned value: %q / %v", errs[0].Reason, errs[0].Err)
	}
	if s := devicestest.Scans(all); s[0].Label != "4006381333931" {
		t.Errorf("scan = %s, want the valid one", devices.Redact(s[0].Label))
	}
}

func TestSerialGapFraming(t *testing.T) {
	p := ptypair.New(t)
	_, evs := openScanner(t, p.B, func(c *scanner.Config) {
		c.Framing = scanner.FrameGap
		c.Gap = 30 * time.Millisecond
	})
	evs.Wait(t, wait, "scanner ready", okCount(1))
	writeA(t, p, "]E04006381333931")
	got := devicestest.Scans(evs.Wait(t, wait, "one scan", scanCount(1)))
	if got[0].Label != "4006381333931" {
		t.Errorf("label = %s, want …3931", devices.Redact(got[0].Label))
	}
}

func TestSerialPartialScanWithoutSuffixIsDropped(t *testing.T) {
	p := ptypair.New(t)
	_, evs := openScanner(t, p.B, func(c *scanner.Config) { c.Stale = 30 * time.Millisecond })
	evs.Wait(t, wait, "scanner ready", okCount(1))
	writeA(t, p, "]E0400638")
	evs.Wait(t, wait, "a misread for the stale partial scan", func(e []devices.Event) bool { return len(devicestest.ReadErrors(e)) == 1 })
	writeA(t, p, "]E04006381333931\r")
	got := devicestest.Scans(evs.Wait(t, wait, "one scan", scanCount(1)))
	if got[0].Label != "4006381333931" {
		t.Errorf("label = %s, want …3931 (the stale part must not be glued on)", devices.Redact(got[0].Label))
	}
}

func TestSerialStartsBeforeThePortExists(t *testing.T) {
	p := ptypair.New(t)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	s, evs := openScanner(t, p.B, nil)
	evs.Wait(t, wait, "disconnected", func(e []devices.Event) bool {
		return devicestest.Count(e, devicestest.IsHealth(devices.CodeDisconnected)) == 1
	})
	if h := s.Health(); h.State != devices.StateError || h.Power != devices.PowerOffline {
		t.Errorf("health = %v, want error/offline", h)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs.Wait(t, wait, "ready after plug-in", okCount(1))
}

// TestSerialReplugCyclesLeakNothing defends "unplug and replug: reports
// disconnected, reconnects with backoff, reports ready; no goroutine or file
// descriptor leaks across 100 cycles".
func TestSerialReplugCyclesLeakNothing(t *testing.T) {
	cycles := 100
	if testing.Short() {
		cycles = 10
	}
	p := ptypair.New(t)
	s, evs := openScanner(t, p.B, nil)
	evs.Wait(t, wait, "scanner ready", okCount(1))
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)

	ctx := context.Background()
	for i := range cycles {
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
		evs.Wait(t, wait, fmt.Sprintf("disconnect %d", i+1), func(e []devices.Event) bool {
			return devicestest.Count(e, devicestest.IsHealth(devices.CodeDisconnected)) >= i+1
		})
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		evs.Wait(t, wait, fmt.Sprintf("ready %d", i+2), okCount(i+2))
	}
	writeA(t, p, "]E04006381333931\r")
	evs.Wait(t, wait, "a scan after the last replug", scanCount(1))
	if h := s.Health(); h.Code != devices.CodeOK || h.State != devices.StateIdle {
		t.Errorf("health = %v, want idle/ok", h)
	}

	// Same state as the baseline (connected, idle): counts must come back.
	deadline := time.Now().Add(5 * time.Second)
	for {
		g, f := runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines+1 && f <= fds+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d replugs: %d goroutines (baseline %d), %d fds (baseline %d)", cycles, g, goroutines, f, fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// TestLogsNeverShowTheScannedValue defends invariant 7 for scans and
// misreads, at debug level.
func TestLogsNeverShowTheScannedValue(t *testing.T) {
	p := ptypair.New(t)
	var buf syncbuf.Buffer
	_, evs := openScanner(t, p.B, func(c *scanner.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	evs.Wait(t, wait, "scanner ready", okCount(1))
	writeA(t, p, "]E02012345678903\r]E02012345678904\r")
	evs.Wait(t, wait, "scan and misread", func(e []devices.Event) bool {
		return len(devicestest.Scans(e)) == 1 && len(devicestest.ReadErrors(e)) == 1
	})
	out := buf.String()
	if !strings.Contains(out, "8903") {
		t.Fatalf("the scan was not logged (redacted) at all: %s", out)
	}
	if strings.Contains(out, "201234567890") {
		t.Errorf("log shows a card number: %s", out)
	}
}
