package scanner

import "fmt"

// Framing says how scans are separated in the byte stream.
type Framing uint8

const (
	FrameCR   Framing = iota // each scan ends with CR (the factory default of most scanners)
	FrameLF                  // ends with LF
	FrameCRLF                // ends with CR LF
	FrameTab                 // ends with TAB
	FrameGap                 // no suffix: a scan ends when no byte comes for the gap
)

func (f Framing) String() string {
	switch f {
	case FrameCR:
		return "cr"
	case FrameLF:
		return "lf"
	case FrameCRLF:
		return "crlf"
	case FrameTab:
		return "tab"
	case FrameGap:
		return "gap"
	}
	return fmt.Sprintf("framing(%d)", uint8(f))
}

// ParseFraming is the inverse of Framing.String.
func ParseFraming(s string) (Framing, error) {
	for f := FrameCR; f <= FrameGap; f++ {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("scanner: unknown framing %q; use cr, lf, crlf, tab or gap", s)
}

// Framer splits a byte stream into scans. CR and LF framing both tolerate
// the other line end (a scanner set to CRLF on a CR configuration still
// gives one scan, not one and an empty one); empty frames are skipped.
// A frame longer than MaxScan is dropped whole and reported once.
type Framer struct {
	Framing Framing

	buf      []byte
	overflow bool
}

// Frame is one scan's bytes, or an overflow report (Data nil).
type Frame struct {
	Data     []byte
	Overflow bool
}

func (f *Framer) isTerm(c byte) bool {
	switch f.Framing {
	case FrameCR, FrameLF, FrameCRLF:
		return c == '\r' || c == '\n'
	case FrameTab:
		return c == '\t'
	}
	return false
}

// Feed adds bytes and appends every frame they complete to out.
func (f *Framer) Feed(p []byte, out []Frame) []Frame {
	for _, c := range p {
		if f.isTerm(c) {
			out = f.end(out)
			continue
		}
		if f.overflow {
			continue
		}
		if len(f.buf) >= MaxScan {
			f.overflow = true
			f.buf = f.buf[:0]
			continue
		}
		f.buf = append(f.buf, c)
	}
	return out
}

// Flush ends the frame in progress, as a gap in the stream does, and
// appends it to out if it is not empty.
func (f *Framer) Flush(out []Frame) []Frame { return f.end(out) }

// Pending reports whether a frame is in progress.
func (f *Framer) Pending() bool { return len(f.buf) > 0 || f.overflow }

func (f *Framer) end(out []Frame) []Frame {
	if f.overflow {
		f.overflow = false
		f.buf = f.buf[:0]
		return append(out, Frame{Overflow: true})
	}
	if len(f.buf) == 0 {
		return out
	}
	d := make([]byte, len(f.buf))
	copy(d, f.buf)
	f.buf = f.buf[:0]
	return append(out, Frame{Data: d})
}
