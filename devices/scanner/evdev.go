package scanner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Linux input event types and values.
const (
	evKey = 0x01

	keyRelease = 0
	keyPress   = 1
)

// EventSize is the size of struct input_event on this platform: a struct
// timeval (two longs), type and code (u16) and value (s32): 24 bytes on
// 64-bit Linux, 16 on 32-bit.
const EventSize = 2*strconv.IntSize/8 + 8

// InputEvent is one decoded struct input_event.
type InputEvent struct {
	Time  time.Time
	Type  uint16
	Code  uint16
	Value int32
}

// ErrShortEvent reports a read that ended inside an input_event record.
var ErrShortEvent = errors.New("scanner: input device returned a partial event record")

// ReadEvent reads one input_event record (native byte order, which is
// little-endian on every platform tillpoint runs on).
func ReadEvent(r io.Reader, buf []byte) (InputEvent, error) {
	if len(buf) < EventSize {
		buf = make([]byte, EventSize)
	}
	buf = buf[:EventSize]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return InputEvent{}, ErrShortEvent
		}
		return InputEvent{}, err
	}
	return DecodeEvent(buf), nil
}

// DecodeEvent decodes one EventSize-byte record.
func DecodeEvent(b []byte) InputEvent {
	le := binary.LittleEndian
	var sec, usec int64
	off := 16
	if EventSize == 24 {
		sec, usec = int64(le.Uint64(b[0:])), int64(le.Uint64(b[8:]))
	} else {
		sec, usec, off = int64(int32(le.Uint32(b[0:]))), int64(int32(le.Uint32(b[4:]))), 8
	}
	return InputEvent{
		Time:  time.Unix(sec, usec*1000),
		Type:  le.Uint16(b[off:]),
		Code:  le.Uint16(b[off+2:]),
		Value: int32(le.Uint32(b[off+4:])),
	}
}

// EncodeEvent is the inverse of DecodeEvent, for tests and tools that
// feed a reader recorded or synthetic events.
func EncodeEvent(e InputEvent) []byte {
	le := binary.LittleEndian
	b := make([]byte, EventSize)
	off := 16
	if EventSize == 24 {
		le.PutUint64(b[0:], uint64(e.Time.Unix()))
		le.PutUint64(b[8:], uint64(e.Time.Nanosecond()/1000))
	} else {
		le.PutUint32(b[0:], uint32(e.Time.Unix()))
		le.PutUint32(b[4:], uint32(e.Time.Nanosecond()/1000))
		off = 8
	}
	le.PutUint16(b[off:], e.Type)
	le.PutUint16(b[off+2:], e.Code)
	le.PutUint32(b[off+4:], uint32(e.Value))
	return b
}

// KeyDecoder turns key events into lines of text, as a keyboard-wedge
// scanner types them: characters by key position on the Keymap (never by
// the desktop's layout), Shift for capitals and symbols, Enter (or TAB,
// when it is the suffix) ending a line, and Alt held with keypad digits
// for a character by its decimal code (how scanners type GS, FNC1 in GS1
// data: Alt+0029).
type KeyDecoder struct {
	Keymap Keymap
	EndTab bool // TAB ends a scan as Enter does

	shift, alt bool
	altCode    int
	altDigits  int
	buf        []byte
	first      time.Time // first key of the line
	last       time.Time // last key press
	maxGap     time.Duration
	keys       int
	overflow   bool
}

// Line is one finished line of keystrokes.
type Line struct {
	Data     []byte
	Overflow bool
	Keys     int           // key presses in the line
	MaxGap   time.Duration // the longest pause between two key presses
	Duration time.Duration // first to last key press
}

// Feed takes one input event and returns a finished line, if it ended one.
func (d *KeyDecoder) Feed(e InputEvent) (Line, bool) {
	if e.Type != evKey {
		return Line{}, false
	}
	switch e.Code {
	case keyLeftShift, keyRightShift:
		d.shift = e.Value != keyRelease
		return Line{}, false
	case keyLeftAlt, keyRightAlt:
		if e.Value == keyPress {
			d.alt, d.altCode, d.altDigits = true, 0, 0
		} else if e.Value == keyRelease {
			if d.alt && d.altDigits > 0 {
				d.add(byte(d.altCode&0xff), e.Time)
			}
			d.alt = false
		}
		return Line{}, false
	case keyLeftCtrl, keyRightCtrl, keyCapsLock, keyEsc:
		return Line{}, false
	}
	if e.Value != keyPress { // releases, and auto-repeat (a scanner never holds a key)
		return Line{}, false
	}
	if e.Code == keyEnter || e.Code == keyKPEnter || (d.EndTab && e.Code == keyTab) {
		return d.end()
	}
	if d.alt {
		if c, ok := keypad(e.Code); ok && c >= '0' && c <= '9' {
			d.altCode = d.altCode*10 + int(c-'0')
			d.altDigits++
		}
		return Line{}, false
	}
	km := d.Keymap
	if km == nil {
		km = KeymapUS()
		d.Keymap = km
	}
	if c := km(e.Code, d.shift); c != 0 {
		d.add(c, e.Time)
	}
	return Line{}, false
}

func (d *KeyDecoder) add(c byte, at time.Time) {
	if d.keys == 0 {
		d.first = at
	} else if gap := at.Sub(d.last); gap > d.maxGap {
		d.maxGap = gap
	}
	d.last = at
	d.keys++
	if len(d.buf) >= MaxScan {
		d.overflow = true
		return
	}
	d.buf = append(d.buf, c)
}

func (d *KeyDecoder) end() (Line, bool) {
	if d.keys == 0 {
		return Line{}, false
	}
	l := Line{Keys: d.keys, MaxGap: d.maxGap, Duration: d.last.Sub(d.first), Overflow: d.overflow}
	if !d.overflow {
		l.Data = append([]byte(nil), d.buf...)
	}
	d.buf, d.keys, d.maxGap, d.overflow = d.buf[:0], 0, 0, false
	return l, true
}

func (l Line) String() string {
	return fmt.Sprintf("%d keys in %v (longest pause %v)", l.Keys, l.Duration, l.MaxGap)
}
