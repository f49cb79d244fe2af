package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/devices"
)

func TestDeviceBusOpensSessionsAndReportsHealth(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	bus := devices.NewBus()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Agent.RunDevices(ctx, bus) }()
	defer func() { cancel(); <-done }()

	nfc := devices.ID{Kind: devices.KindNFC, Path: "ACS ACR122U 00 00"}
	// A phone's random UID is no loyalty card: no session.
	bus.Publish(devices.Tap{Device: nfc, At: time.Now(), UID: []byte{0x08, 1, 2, 3}, RandomUID: true})
	scanner := devices.ID{Kind: devices.KindScanner, VID: "0c2e", PID: "0b61", Path: "/dev/ttyACM0"}
	bus.Publish(devices.Scan{Device: scanner, At: time.Now(), Data: []byte("]E02012345678903"), Label: "2012345678903", AIM: "]E0"})
	agenttest.Eventually(t, 5*time.Second, "the scan opening a session", func() bool { return h.Agent.Session(ctx).Open })
	if s := h.Agent.Session(ctx); s.Source != "scanner" || s.Card != "barcode:••••8903" {
		t.Errorf("session: got source %q card %q, want the scanner's masked card", s.Source, s.Card)
	}

	bus.Publish(devices.Tap{Device: nfc, At: time.Now(), UID: []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}})
	agenttest.Eventually(t, 5*time.Second, "the tap replacing the session", func() bool { return h.Agent.Session(ctx).Source == "nfc" })
	if s := h.Agent.Session(ctx); s.Card != "nfc:••••E5F6" {
		t.Errorf("session card: got %q", s.Card)
	}

	pr := devices.ID{Kind: devices.KindPrinter, Path: "127.0.0.1:9100"}
	bus.Publish(devices.HealthEvent{Health: devices.Health{Device: pr, State: devices.StateError, Power: devices.PowerOnline, Code: "paper_out", Reason: "Printer: paper out"}, At: time.Now()})
	agenttest.Eventually(t, 5*time.Second, "the printer's health reaching the status", func() bool {
		for _, d := range h.Agent.Status().Devices {
			if d.Kind == "printer" && d.Code == "paper_out" && !d.OK() {
				return true
			}
		}
		return false
	})
}
