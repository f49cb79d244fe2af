package devicestest

import (
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices"
)

// Events is a devices.Publisher that keeps every event, for tests.
type Events struct {
	mu      sync.Mutex
	evs     []devices.Event
	changed chan struct{}
}

var _ devices.Publisher = (*Events)(nil)

// Publish records e.
func (e *Events) Publish(ev devices.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
}

// All returns the events so far.
func (e *Events) All() []devices.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]devices.Event(nil), e.evs...)
}

// Wait waits until cond holds for the events so far, and fails the test
// with what was seen when it does not within d.
func (e *Events) Wait(t testing.TB, d time.Duration, what string, cond func([]devices.Event) bool) []devices.Event {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		evs := append([]devices.Event(nil), e.evs...)
		if e.changed == nil {
			e.changed = make(chan struct{})
		}
		ch := e.changed
		e.mu.Unlock()
		if cond(evs) {
			return evs
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waited %v for %s; got %d events: %v", d, what, len(evs), Summary(evs))
			return nil
		}
	}
}

// Count returns how many events match pred.
func Count(evs []devices.Event, pred func(devices.Event) bool) int {
	n := 0
	for _, e := range evs {
		if pred(e) {
			n++
		}
	}
	return n
}

// Scans returns the scans among evs, in order.
func Scans(evs []devices.Event) []devices.Scan {
	var out []devices.Scan
	for _, e := range evs {
		if s, ok := e.(devices.Scan); ok {
			out = append(out, s)
		}
	}
	return out
}

// Taps returns the taps among evs, in order.
func Taps(evs []devices.Event) []devices.Tap {
	var out []devices.Tap
	for _, e := range evs {
		if s, ok := e.(devices.Tap); ok {
			out = append(out, s)
		}
	}
	return out
}

// Healths returns the health changes among evs, in order.
func Healths(evs []devices.Event) []devices.Health {
	var out []devices.Health
	for _, e := range evs {
		if h, ok := e.(devices.HealthEvent); ok {
			out = append(out, h.Health)
		}
	}
	return out
}

// ReadErrors returns the read errors among evs, in order.
func ReadErrors(evs []devices.Event) []devices.ReadError {
	var out []devices.ReadError
	for _, e := range evs {
		if r, ok := e.(devices.ReadError); ok {
			out = append(out, r)
		}
	}
	return out
}

// IsHealth returns a predicate for a health event with code c.
func IsHealth(c devices.Code) func(devices.Event) bool {
	return func(e devices.Event) bool {
		h, ok := e.(devices.HealthEvent)
		return ok && h.Code == c
	}
}

// Summary describes events briefly for a failure message (values redacted).
func Summary(evs []devices.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		switch v := e.(type) {
		case devices.Scan:
			out = append(out, v.String())
		case devices.Tap:
			out = append(out, v.String())
		case devices.HealthEvent:
			out = append(out, "health "+string(v.Code))
		case devices.ReadError:
			out = append(out, v.String())
		}
	}
	if len(out) > 20 {
		out = append(out[:10], append([]string{"..."}, out[len(out)-10:]...)...)
	}
	return out
}
