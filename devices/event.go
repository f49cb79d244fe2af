package devices

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"
)

// Event is something a device reports: a Scan, a Tap, a Health change or a
// ReadError. The set is closed; switch on the concrete type.
type Event interface {
	Source() ID
	Time() time.Time
	event()
}

// Publisher takes events from a driver. Publish must not block for long:
// drivers call it from their read loops.
type Publisher interface {
	Publish(Event)
}

// Scan is one barcode read, in the spirit of UnifiedPOS's ScanData (Data:
// everything the scanner sent but the frame suffix), ScanDataLabel (Label:
// the data without the symbology identifier) and ScanDataType (Symbology).
// Data and Label are raw card values: String and LogValue redact them.
type Scan struct {
	Device    ID
	At        time.Time
	Data      []byte    // as received, AIM prefix included, frame suffix removed
	Label     string    // the decoded label
	Symbology Symbology // from the AIM identifier, or inferred
	AIM       string    // the AIM symbology identifier ("]E0"), empty if none was sent
}

func (s Scan) Source() ID      { return s.Device }
func (s Scan) Time() time.Time { return s.At }
func (Scan) event()            {}

func (s Scan) String() string {
	return fmt.Sprintf("scan %s %s %s", s.Device, s.Symbology, Redact(s.Label))
}

// LogValue keeps the label out of logs.
func (s Scan) LogValue() slog.Value {
	return slog.GroupValue(slog.String("device", s.Device.String()),
		slog.String("symbology", s.Symbology.String()), slog.String("label", Redact(s.Label)))
}

// Tap is one card presented to an NFC reader. UID is the raw card UID:
// String and LogValue redact it.
type Tap struct {
	Device ID
	At     time.Time
	UID    []byte
	ATR    []byte
	// RandomUID is true for a card whose UID changes on every read (phones,
	// bank cards, passports: a 4-byte UID starting 0x08). Such a UID
	// identifies nothing and must not be taken as a loyalty card.
	RandomUID bool
}

func (t Tap) Source() ID      { return t.Device }
func (t Tap) Time() time.Time { return t.At }
func (Tap) event()            {}

// UIDHex is the UID in upper-case hex, the form loyalty's NFC tokens take.
func (t Tap) UIDHex() string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 0, 2*len(t.UID))
	for _, c := range t.UID {
		b = append(b, digits[c>>4], digits[c&0xf])
	}
	return string(b)
}

func (t Tap) String() string {
	kind := "card"
	if t.RandomUID {
		kind = "random-uid card"
	}
	return fmt.Sprintf("tap %s %s %d-byte uid %s", t.Device, kind, len(t.UID), Redact(hex.EncodeToString(t.UID)))
}

// LogValue keeps the UID out of logs.
func (t Tap) LogValue() slog.Value {
	return slog.GroupValue(slog.String("device", t.Device.String()),
		slog.Int("uid_len", len(t.UID)), slog.String("uid", Redact(t.UIDHex())), slog.Bool("random_uid", t.RandomUID))
}

// HealthEvent reports that a device's health changed.
type HealthEvent struct {
	Health
	At time.Time
}

func (h HealthEvent) Source() ID      { return h.Device }
func (h HealthEvent) Time() time.Time { return h.At }
func (HealthEvent) event()            {}

// ReadError reports a read that failed but left the device working: a
// misread barcode, a card that answered an error status word, a card pulled
// away mid-read. Reason never holds a card value.
type ReadError struct {
	Device ID
	At     time.Time
	Code   Code
	Reason string
	Err    error
}

func (e ReadError) Source() ID      { return e.Device }
func (e ReadError) Time() time.Time { return e.At }
func (ReadError) event()            {}

func (e ReadError) String() string {
	return fmt.Sprintf("read error %s %s: %s", e.Device, e.Code, e.Reason)
}

// IsRead reports whether e is a scan or a tap: the events that go to
// whoever waits for a card, and expire when nobody does.
func IsRead(e Event) bool {
	switch e.(type) {
	case Scan, Tap:
		return true
	}
	return false
}
