package printer

import (
	"fmt"

	"github.com/tillpoint/tillpoint/devices"
)

// ESC/POS commands this package sends.
const (
	// cmdStatus is DLE EOT 1, 2, 3 and 4: printer, offline cause, error
	// cause and paper sensor, answered in that order.
	cmdStatus  = "\x10\x04\x01" + "\x10\x04\x02" + "\x10\x04\x03" + "\x10\x04\x04"
	cmdJobDone = "\x1d\x72\x01" // GS r 1
)

// DrawerKick returns ESC p for drawer pin 0 (connector pin 2) or 1 (pin 5)
// with the usual 50 ms on, 500 ms off pulse.
func DrawerKick(pin int) []byte {
	m := byte(0)
	if pin == 1 {
		m = 1
	}
	return []byte{0x1b, 0x70, m, 25, 250}
}

// isRealtime reports whether b has the fixed bits of a DLE EOT answer.
func isRealtime(b byte) bool { return b&0x93 == 0x12 }

// isTransmit reports whether b has the fixed bits of a GS r answer.
func isTransmit(b byte) bool { return b&0x90 == 0 }

// Status is what a printer's real-time status says. Known is false for a
// printer that did not answer: then nothing else is known either.
type Status struct {
	Known        bool
	Offline      bool
	CoverOpen    bool
	PaperNearEnd bool
	PaperOut     bool
	Error        bool // a mechanical, cutter or unrecoverable error
	DrawerOpen   bool // drawer kick connector pin 3 (meaning depends on the drawer)
}

// decodeStatus reads the answers to DLE EOT 1, 2, 3 and 4.
func decodeStatus(printer, offline, errs, paper byte) Status {
	return Status{
		Known:        true,
		DrawerOpen:   printer&0x04 != 0,
		Offline:      printer&0x08 != 0,
		CoverOpen:    offline&0x04 != 0,
		PaperOut:     offline&0x20 != 0 || paper&0x60 != 0,
		Error:        offline&0x40 != 0 || errs&0x68 != 0,
		PaperNearEnd: paper&0x0c != 0,
	}
}

// Ready reports whether the printer can print now.
func (s Status) Ready() bool {
	return s.Known && !s.Offline && !s.CoverOpen && !s.PaperOut && !s.Error
}

// health is the device health this status means.
func (s Status) health() (devices.State, devices.Power, devices.Code, string) {
	switch {
	case !s.Known:
		return devices.StateIdle, devices.PowerUnknown, devices.CodeStatusUnknown, "Printer: status unknown (it does not answer status requests)"
	case s.CoverOpen:
		return devices.StateError, devices.PowerOnline, devices.CodeCoverOpen, "Printer: cover open; close it"
	case s.PaperOut:
		return devices.StateError, devices.PowerOnline, devices.CodePaperOut, "Printer: paper out; load a new roll"
	case s.Error:
		return devices.StateError, devices.PowerOnline, devices.CodeDeviceError, "Printer: error; switch it off and on"
	case s.Offline:
		return devices.StateError, devices.PowerOnline, devices.CodeDeviceError, "Printer: offline"
	case s.PaperNearEnd:
		return devices.StateIdle, devices.PowerOnline, devices.CodePaperNearEnd, "Printer: paper low; have a roll ready"
	}
	return devices.StateIdle, devices.PowerOnline, devices.CodeOK, "Printer: ready"
}

func (s Status) String() string {
	if !s.Known {
		return "unknown"
	}
	_, _, code, _ := s.health()
	return fmt.Sprint(code)
}
