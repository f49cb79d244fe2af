package devices

import (
	"log/slog"
	"sync"
	"time"
)

// Reporter keeps one device's current Health and publishes a HealthEvent
// when it changes (state, power or code), not on every repeat: a scanner
// unplugged for an hour reports once, not once per retry.
// The zero value is not usable; make one with NewReporter.
type Reporter struct {
	pub    Publisher
	now    func() time.Time
	logger *slog.Logger

	mu sync.Mutex
	h  Health
}

// NewReporter returns a Reporter for id, closed and of unknown power.
func NewReporter(id ID, pub Publisher, now func() time.Time, logger *slog.Logger) *Reporter {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reporter{pub: pub, now: now, logger: logger,
		h: Health{Device: id, State: StateClosed, Power: PowerUnknown, Code: CodeClosed, Reason: "closed"}}
}

// Set records the device's health and publishes it if it changed. It
// reports whether it did.
func (r *Reporter) Set(state State, power Power, code Code, reason string) bool {
	r.mu.Lock()
	old := r.h
	h := Health{Device: old.Device, State: state, Power: power, Code: code, Reason: reason}
	changed := old.State != h.State || old.Power != h.Power || old.Code != h.Code
	r.h = h
	r.mu.Unlock()
	if !changed {
		return false
	}
	r.logger.Info("device health", KeyDevice, h.Device.String(), KeyState, h.State.String(),
		KeyCode, string(h.Code), KeyReason, h.Reason)
	if r.pub != nil {
		r.pub.Publish(HealthEvent{Health: h, At: r.now()})
	}
	return true
}

// Get returns the current health.
func (r *Reporter) Get() Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.h
}
