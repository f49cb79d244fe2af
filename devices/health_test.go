package devices_test

import (
	"testing"

	"github.com/tillpoint/tillpoint/devices"
)

type sink struct{ evs []devices.Event }

func (s *sink) Publish(e devices.Event) { s.evs = append(s.evs, e) }

func TestReporterPublishesChangesNotRepeats(t *testing.T) {
	s := &sink{}
	r := devices.NewReporter(scannerID, s, nil, nil)
	if h := r.Get(); h.State != devices.StateClosed || h.Power != devices.PowerUnknown {
		t.Fatalf("initial health = %v, want closed/unknown", h)
	}
	for range 3 {
		r.Set(devices.StateError, devices.PowerOffline, devices.CodeDisconnected, "Scanner: unplugged")
	}
	r.Set(devices.StateIdle, devices.PowerOnline, devices.CodeOK, "Scanner: ready")
	if len(s.evs) != 2 {
		t.Fatalf("published %d events, want 2 (one per change)", len(s.evs))
	}
	if h := s.evs[0].(devices.HealthEvent); h.Code != devices.CodeDisconnected || h.OK() {
		t.Errorf("first = %v, want disconnected and not OK", h)
	}
	if h := s.evs[1].(devices.HealthEvent); !h.OK() {
		t.Errorf("second = %v, want OK", h)
	}
}
