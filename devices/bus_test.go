package devices_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var scannerID = devices.ID{Kind: devices.KindScanner, Path: "/dev/ttyACM0"}

func scan(label string) devices.Scan {
	return devices.Scan{Device: scannerID, Label: label, Data: []byte(label), Symbology: devices.SymCode128}
}

func TestBusUntakenScanExpiresInsteadOfReachingNextCustomer(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	b := devices.NewBus()
	b.Now = clk.Now
	b.Publish(scan("CUSTOMER-A"))
	clk.Add(b.ReadTTL) // nobody took it in time
	b.Publish(scan("CUSTOMER-B"))

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e, err := b.NextRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.(devices.Scan).Label; got != "CUSTOMER-B" {
		t.Errorf("NextRead = %s, want CUSTOMER-B (A expired)", got)
	}
	if got := b.Expired(); got != 1 {
		t.Errorf("Expired = %d, want 1", got)
	}

	b.Publish(scan("CUSTOMER-C"))
	clk.Add(b.ReadTTL + time.Millisecond)
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if e, err := b.NextRead(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("NextRead after expiry = %v, %v; want deadline exceeded", e, err)
	}
}

func TestBusReadGoesToExactlyOneWaiter(t *testing.T) {
	b := devices.NewBus()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan string, 4)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := b.NextRead(ctx)
			if err == nil {
				got <- e.(devices.Scan).Label
			}
		}()
	}
	b.Publish(scan("ONE"))
	b.Publish(scan("TWO"))
	wg.Wait()
	close(got)
	var labels []string
	for l := range got {
		labels = append(labels, l)
	}
	if len(labels) != 2 || labels[0] == labels[1] {
		t.Errorf("waiters got %v, want ONE and TWO once each", labels)
	}
}

func TestBusHealthKeepsLatestPerDeviceAndSubscribersSeeAll(t *testing.T) {
	b := devices.NewBus()
	ch, unsubscribe := b.Subscribe(2)
	printer := devices.ID{Kind: devices.KindPrinter, Path: "tcp:10.0.0.9:9100"}
	b.Publish(devices.HealthEvent{Health: devices.Health{Device: printer, State: devices.StateIdle, Code: devices.CodeOK}})
	b.Publish(devices.HealthEvent{Health: devices.Health{Device: printer, State: devices.StateError, Code: devices.CodePaperOut, Reason: "Printer: paper out"}})
	b.Publish(scan("X")) // the subscriber's buffer of 2 is full: dropped for it, not blocking
	hs := b.Health()
	if len(hs) != 1 || hs[0].Code != devices.CodePaperOut {
		t.Errorf("Health = %v, want the printer's latest (paper out)", hs)
	}
	if dropped := unsubscribe(); dropped != 1 {
		t.Errorf("dropped = %d, want 1", dropped)
	}
	var n int
	for range ch {
		n++
	}
	if n != 2 {
		t.Errorf("subscriber got %d events, want 2", n)
	}
	unsubscribe() // twice is safe
}

func TestBusQueueIsBounded(t *testing.T) {
	b := devices.NewBus()
	b.ReadQueue = 2
	b.Publish(scan("1"))
	b.Publish(scan("2"))
	b.Publish(scan("3"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e, _ := b.NextRead(ctx)
	if e.(devices.Scan).Label != "2" {
		t.Errorf("first read = %v, want 2 (the oldest dropped)", e)
	}
}

func TestRedactShowsOnlyLastFour(t *testing.T) {
	for in, want := range map[string]string{"2012345678903": "…8903", "04A1B2C3D4E5F6": "…E5F6", "abc": "…***", "": "…"} {
		if got := devices.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	tap := devices.Tap{Device: devices.ID{Kind: devices.KindNFC, Path: "Virtual PCD 00 00"}, UID: []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}}
	if s := tap.String(); strings.Contains(strings.ToUpper(s), "04A1B2") {
		t.Errorf("Tap.String() = %q shows the UID", s)
	}
	if s := scan("2012345678903").String(); strings.Contains(s, "20123456") {
		t.Errorf("Scan.String() = %q shows the label", s)
	}
}

func TestIDIsStableAndMatches(t *testing.T) {
	id := devices.ID{Kind: devices.KindScanner, VID: "05E0", PID: "1200", Serial: "S123", Path: "/dev/serial/by-id/usb-Zebra-if00"}
	if got, want := id.String(), "scanner:usb:05e0:1200:S123@/dev/serial/by-id/usb-Zebra-if00"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if !id.Match(devices.ID{VID: "05e0", PID: "1200"}) {
		t.Error("Match by VID:PID (other case) = false, want true")
	}
	if id.Match(devices.ID{VID: "05e0", PID: "1201"}) {
		t.Error("Match with another PID = true, want false")
	}
	if !id.Match(devices.ID{Path: "/dev/serial/by-id/usb-Zebra-if00"}) {
		t.Error("Match by path = false, want true")
	}
}
