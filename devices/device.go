package devices

import (
	"fmt"
	"strings"
)

// Kind says what a device is.
type Kind string

const (
	KindScanner Kind = "scanner"
	KindNFC     Kind = "nfc"
	KindPrinter Kind = "printer"
)

// ID is a device's stable identity across reboots and replugs: its USB
// vendor and product IDs and serial number when it has them, and the path
// it is reached by (a /dev/serial/by-id link, a TCP address, a PC/SC reader
// name). It never holds an enumeration counter.
type ID struct {
	Kind   Kind
	VID    string // USB vendor ID, 4 hex digits, lower case; empty if not USB
	PID    string // USB product ID, 4 hex digits, lower case
	Serial string // USB serial number, if the device reports one
	Path   string // how the driver reaches it
}

// String is the identity as one token, stable for a given device:
// "scanner:usb:05e0:1200:S123@/dev/ttyACM0" or "printer:tcp:10.0.0.9:9100".
func (id ID) String() string {
	var b strings.Builder
	b.WriteString(string(id.Kind))
	b.WriteByte(':')
	if id.VID != "" || id.PID != "" {
		fmt.Fprintf(&b, "usb:%s:%s", strings.ToLower(id.VID), strings.ToLower(id.PID))
		if id.Serial != "" {
			b.WriteString(":" + id.Serial)
		}
		b.WriteByte('@')
	}
	b.WriteString(id.Path)
	return b.String()
}

// Match reports whether id is the device a configuration entry names: every
// non-empty field of want must be equal (VID and PID case-insensitively).
func (id ID) Match(want ID) bool {
	if want.Kind != "" && want.Kind != id.Kind {
		return false
	}
	if want.VID != "" && !strings.EqualFold(want.VID, id.VID) {
		return false
	}
	if want.PID != "" && !strings.EqualFold(want.PID, id.PID) {
		return false
	}
	if want.Serial != "" && want.Serial != id.Serial {
		return false
	}
	if want.Path != "" && want.Path != id.Path {
		return false
	}
	return true
}

// State is a device's place in the UnifiedPOS state machine.
type State uint8

const (
	StateClosed State = iota // not opened, or closed by its owner
	StateIdle                // open and ready
	StateBusy                // working on a job or a read
	StateError               // open, but not working; Health says why
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateIdle:
		return "idle"
	case StateBusy:
		return "busy"
	case StateError:
		return "error"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Power is what is known of a device's power and connection.
type Power uint8

const (
	PowerUnknown Power = iota // the device cannot tell (a printer that does not answer status)
	PowerOnline
	PowerOffline
)

func (p Power) String() string {
	switch p {
	case PowerUnknown:
		return "unknown"
	case PowerOnline:
		return "online"
	case PowerOffline:
		return "offline"
	}
	return fmt.Sprintf("power(%d)", uint8(p))
}

// Code is a stable, machine-readable health code. Programs switch on it;
// its text never changes once released.
type Code string

const (
	CodeOK            Code = "ok"
	CodeClosed        Code = "closed"
	CodeDisconnected  Code = "disconnected"   // unplugged, port gone, connection refused
	CodeNoService     Code = "no_service"     // pcscd not running
	CodeNoReader      Code = "no_reader"      // PC/SC up, the reader is not there
	CodePaperOut      Code = "paper_out"      // printer out of paper
	CodePaperNearEnd  Code = "paper_near_end" // printer paper low (still printing)
	CodeCoverOpen     Code = "cover_open"
	CodeDeviceError   Code = "device_error"   // the device reports an error of its own
	CodeStatusUnknown Code = "status_unknown" // the device does not answer status requests
	CodeMisread       Code = "misread"        // a scan failed its check digit or framing
	CodeReadFailed    Code = "read_failed"    // a card answered with an error status word
	CodeCardRemoved   Code = "card_removed"   // a card left before it was read
	CodeOverflow      Code = "overflow"       // input longer than any scan; discarded
)

// Health is a device's state, power and condition at a moment.
type Health struct {
	Device ID
	State  State
	Power  Power
	Code   Code
	Reason string // for a cashier: "Printer: paper out"; never holds a card value
}

// OK reports whether the device can do its work now. A status-unknown
// printer is not OK and not broken: callers may still send it jobs.
func (h Health) OK() bool { return h.State == StateIdle || h.State == StateBusy }

func (h Health) String() string {
	return fmt.Sprintf("%s %s power=%s %s: %s", h.Device, h.State, h.Power, h.Code, h.Reason)
}

// Redact returns the last 4 characters of a card value or UID behind an
// ellipsis, the only form that may appear in logs and error messages.
func Redact(v string) string {
	if len(v) <= 4 {
		return "…" + strings.Repeat("*", len(v))
	}
	return "…" + v[len(v)-4:]
}
