package receipt

import (
	"strings"
	"unicode/utf8"

	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// Roll widths in columns of the printer's font A: a 58 mm roll, an 80 mm
// roll on a 42-column printer, and an 80 mm roll on a 48-column one.
const (
	Width58mm     = 32
	Width80mm     = 42
	Width80mmWide = 48
	// MinWidth and MaxWidth bound the widths a block renders at; a width
	// outside is taken as the nearest bound.
	MinWidth = 24
	MaxWidth = 96
)

// line is one rendered line: text fitted to the width, or a QR code.
type line struct {
	text  string
	bold  bool
	large bool
	tall  bool
	align escpos.Align
	qr    string
}

func (l line) mult() int {
	if l.large {
		return 2
	}
	return 1
}

func clampWidth(width int) int {
	return max(MinWidth, min(MaxWidth, width))
}

// lines fits the block to width columns. printable maps a text to what will
// print (a code page's fallbacks can lengthen it), so lengths are measured
// on what the printer shows.
func (b Block) lines(width int, printable func(string) string) []line {
	width = clampWidth(width)
	out := make([]line, 0, len(b.Elements)+4)
	for _, e := range b.Elements {
		base := line{bold: e.Bold, large: e.Large, tall: e.Tall, align: e.Align}
		cols := width / base.mult()
		switch e.Kind {
		case KindText:
			for _, s := range wrap(printable(e.Text), cols) {
				l := base
				l.text = s
				out = append(out, l)
			}
		case KindPair:
			base.align = escpos.Left
			for _, s := range pair(printable(e.Text), printable(e.Value), cols) {
				l := base
				l.text = s
				out = append(out, l)
			}
		case KindRule:
			base.align, base.bold = escpos.Left, false
			base.text = strings.Repeat("-", cols)
			out = append(out, base)
		case KindBlank:
			out = append(out, base)
		case KindQR:
			base.qr = e.Data
			out = append(out, base)
		}
	}
	return out
}

// Text renders the block for a roll of width columns, one "\n"-ended line
// per printed line, aligned with spaces; a QR code shows as "[QR]", so the
// text can go to logs without the claim token. Large (double-width) text is
// spread out, "C l u b", to take the columns it takes on paper.
func (b Block) Text(width int) string {
	width = clampWidth(width)
	var s strings.Builder
	for _, l := range b.lines(width, identity) {
		text := l.text
		if l.qr != "" {
			text = "[QR]"
		}
		used := utf8.RuneCountInString(text) * l.mult()
		pad := 0
		switch {
		case text == "":
		case l.align == escpos.Center:
			pad = (width - used) / 2
		case l.align == escpos.Right:
			pad = width - used
		}
		for i := 0; i < pad; i++ {
			s.WriteByte(' ')
		}
		s.WriteString(escpos.Spread(text, l.mult()))
		s.WriteByte('\n')
	}
	return s.String()
}

func identity(s string) string { return s }

// wrap breaks s into lines of at most cols characters at spaces, splitting
// a word only when it is longer than a line.
func wrap(s string, cols int) []string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= cols {
		return []string{s}
	}
	var out []string
	var cur strings.Builder
	curLen := 0
	for _, w := range strings.Fields(s) {
		wl := utf8.RuneCountInString(w)
		if curLen > 0 && curLen+1+wl <= cols {
			cur.WriteByte(' ')
			cur.WriteString(w)
			curLen += 1 + wl
			continue
		}
		if curLen > 0 {
			out = append(out, cur.String())
			cur.Reset()
			curLen = 0
		}
		for wl > cols { // a word longer than the line: split it
			r := []rune(w)
			out = append(out, string(r[:cols]))
			w = string(r[cols:])
			wl -= cols
		}
		cur.WriteString(w)
		curLen = wl
	}
	if curLen > 0 {
		out = append(out, cur.String())
	}
	return out
}

// pair lays out a label and a right-aligned value: the label wraps in the
// columns the value leaves, and the value ends its last line. A value too
// wide to share a line goes on a line of its own.
func pair(label, value string, cols int) []string {
	vl := utf8.RuneCountInString(value)
	labelCols := cols - vl - 1
	if labelCols < cols/3 {
		out := wrap(label, cols)
		for _, v := range wrap(value, cols) {
			out = append(out, strings.Repeat(" ", cols-utf8.RuneCountInString(v))+v)
		}
		return out
	}
	out := wrap(label, labelCols)
	last := out[len(out)-1]
	out[len(out)-1] = last + strings.Repeat(" ", cols-utf8.RuneCountInString(last)-vl) + value
	return out
}
