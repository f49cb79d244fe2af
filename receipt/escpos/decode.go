package escpos

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Decoder errors. Every error a Decoder returns wraps one of these.
var (
	// ErrUnsupported reports a command this decoder does not know, or a
	// known command with an argument no printer accepts.
	ErrUnsupported = errors.New("escpos: unsupported command")
	// ErrTruncated reports bytes that end inside a command.
	ErrTruncated = errors.New("escpos: truncated command")
)

// Style is how a line prints.
type Style struct {
	Bold bool
	// Width and Height are the character magnification, 1 to 8.
	Width, Height int
	Align         Align
}

// Line is one printed line of text, decoded from the code page.
type Line struct {
	Text string
	Style
}

// Code is a printed QR code or barcode.
type Code struct {
	// Kind is "QR", "EAN-13", "CODE128", or for function A barcodes
	// "UPC-A", "UPC-E", "EAN-8", "CODE39", "ITF", "CODABAR"; "IMAGE" is a
	// raster image (GS v 0), whose Data is empty.
	Kind string
	// Data is the payload: the QR's bytes, the barcode's characters
	// (CODE128 without its code set prefixes, EAN-13 with its check digit).
	Data string
	// Line is the number of text lines printed before the code.
	Line  int
	Align Align
	// ModuleSize and Level are the QR settings in force when it printed.
	ModuleSize int
	Level      ECLevel
}

// Doc is what a printer printed: text lines, codes, and where it cut.
type Doc struct {
	Lines []Line
	Codes []Code
	// Cuts holds, for each cut, the number of lines printed before it.
	Cuts []int
	// StatusRequests counts DLE EOT real-time status requests received.
	StatusRequests int
}

// Strings returns the text of each line.
func (d *Doc) Strings() []string {
	out := make([]string, len(d.Lines))
	for i, l := range d.Lines {
		out[i] = l.Text
	}
	return out
}

// Text lays the document out on a roll of width columns, as a printer
// would: aligned lines, a double-width character taking two columns (shown
// as the character and a space: "C l u b"), each code as a line "[QR]" or
// "[EAN-13]" in its alignment. Lines end in "\n".
func (d *Doc) Text(width int) string {
	var b strings.Builder
	codes := d.Codes
	writeCodes := func(upTo int) {
		for len(codes) > 0 && codes[0].Line <= upTo {
			writeAligned(&b, "["+codes[0].Kind+"]", 1, codes[0].Align, width)
			codes = codes[1:]
		}
	}
	for i, l := range d.Lines {
		writeCodes(i)
		writeAligned(&b, l.Text, l.Width, l.Align, width)
	}
	writeCodes(len(d.Lines))
	return b.String()
}

func writeAligned(b *strings.Builder, text string, mult int, a Align, width int) {
	if mult < 1 {
		mult = 1
	}
	used := utf8.RuneCountInString(text) * mult
	pad := 0
	switch {
	case text == "":
	case a == Center:
		pad = (width - used) / 2
	case a == Right:
		pad = width - used
	}
	if pad > 0 {
		b.WriteString(strings.Repeat(" ", pad))
	}
	b.WriteString(Spread(text, mult))
	b.WriteByte('\n')
}

// Spread shows text printed at mult times the normal width in a fixed-width
// preview: each character followed by mult-1 spaces, trailing ones dropped.
func Spread(text string, mult int) string {
	if mult <= 1 || text == "" {
		return text
	}
	var b strings.Builder
	gap := strings.Repeat(" ", mult-1)
	for i, r := range text {
		if i > 0 {
			b.WriteString(gap)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Decode reads a whole ESC/POS stream. It returns an error wrapping
// ErrUnsupported or ErrTruncated, with the offset, for anything it cannot
// read; the Doc holds what printed up to there.
func Decode(p []byte) (*Doc, error) {
	var d Decoder
	_, err := d.Write(p)
	if err == nil {
		err = d.Close()
	}
	return d.Doc(), err
}

// Decoder reads an ESC/POS stream in pieces, as a printer does: a command
// may straddle two writes. It is not safe for concurrent use. The zero
// Decoder is ready, in the state of a printer after ESC @.
type Decoder struct {
	doc     Doc
	pending []byte // an incomplete command kept for the next Write
	offset  int    // bytes consumed before pending
	err     error

	page       CodePage
	style      Style
	text       strings.Builder
	lineStyle  Style
	inLine     bool
	qrData     []byte
	qrSize     int
	qrLevel    ECLevel
	configured bool
}

func (d *Decoder) reset() {
	d.page = CP437
	d.style = Style{Width: 1, Height: 1}
	d.text.Reset()
	d.inLine = false
	d.qrData, d.qrSize, d.qrLevel = nil, 3, ECLevelL
	d.configured = true
}

// Doc returns what has printed so far. A line not yet ended by LF or a
// feed is not included.
func (d *Decoder) Doc() *Doc { return &d.doc }

// Write decodes p. After an error the Decoder stays failed and returns the
// same error.
func (d *Decoder) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if !d.configured {
		d.reset()
	}
	buf, owned := p, false
	if len(d.pending) > 0 {
		buf, owned = append(d.pending, p...), true
		d.pending = nil
	}
	for len(buf) > 0 {
		n, err := d.step(buf)
		if errors.Is(err, errIncomplete) {
			if owned {
				d.pending = buf // ours already: a long command in small writes costs no copies
			} else {
				d.pending = append(make([]byte, 0, 2*len(buf)), buf...)
			}
			return len(p), nil
		}
		if err != nil {
			d.err = fmt.Errorf("at byte %d: %w", d.offset, err)
			return len(p), d.err
		}
		d.offset += n
		buf = buf[n:]
	}
	return len(p), nil
}

// Close reports a command left incomplete at the end of the stream.
func (d *Decoder) Close() error {
	if d.err != nil {
		return d.err
	}
	if len(d.pending) > 0 {
		return fmt.Errorf("at byte %d: %w: % x", d.offset, ErrTruncated, d.pending[:min(len(d.pending), 8)])
	}
	return nil
}

var errIncomplete = errors.New("incomplete")

// maxRaster bounds a raster image: 576 dots (72 bytes) wide on an 80 mm
// roll, by 8192 dots, is 576 KiB; a command claiming more is garbage.
const maxRaster = 1 << 20

// need reports whether p holds n bytes; it returns errIncomplete if not.
func need(p []byte, n int) error {
	if len(p) < n {
		return errIncomplete
	}
	return nil
}

func (d *Decoder) step(p []byte) (int, error) {
	c := p[0]
	switch {
	case c == '\n':
		d.endLine()
		return 1, nil
	case c == '\r':
		return 1, nil
	case c == 0x1b:
		return d.esc(p)
	case c == 0x1d:
		return d.gs(p)
	case c == 0x10: // DLE EOT n: real-time status request
		if err := need(p, 3); err != nil {
			return 0, err
		}
		if p[1] != 0x04 || p[2] < 1 || p[2] > 4 {
			return 0, fmt.Errorf("%w: DLE %02x %02x", ErrUnsupported, p[1], p[2])
		}
		d.doc.StatusRequests++
		return 3, nil
	case c < 0x20:
		return 0, fmt.Errorf("%w: control byte 0x%02x", ErrUnsupported, c)
	}
	// A run of text.
	n := 0
	for n < len(p) && p[n] >= 0x20 {
		if !d.inLine {
			d.inLine = true
			d.lineStyle = d.style
		}
		d.text.WriteRune(d.page.DecodeByte(p[n]))
		n++
	}
	return n, nil
}

func (d *Decoder) endLine() {
	if !d.inLine {
		d.lineStyle = d.style
	}
	d.doc.Lines = append(d.doc.Lines, Line{Text: d.text.String(), Style: d.lineStyle})
	d.text.Reset()
	d.inLine = false
}

// flush ends a started line, as a printer does before a code or a cut.
func (d *Decoder) flush() {
	if d.inLine {
		d.endLine()
	}
}

func (d *Decoder) esc(p []byte) (int, error) {
	if err := need(p, 2); err != nil {
		return 0, err
	}
	cmd := p[1]
	switch cmd {
	case '@':
		d.reset()
		return 2, nil
	case '2': // default line spacing: no argument, no effect on text
		return 2, nil
	}
	if err := need(p, 3); err != nil {
		return 0, err
	}
	n := p[2]
	switch cmd {
	case 't':
		cp := CodePage(n)
		if !cp.Valid() {
			return 0, fmt.Errorf("%w: ESC t %d: code page not supported (decoder reads 0, 2, 16, 19)", ErrUnsupported, n)
		}
		d.page = cp
	case 'E':
		d.style.Bold = n&1 == 1
	case 'a':
		switch n {
		case 0, 48:
			d.style.Align = Left
		case 1, 49:
			d.style.Align = Center
		case 2, 50:
			d.style.Align = Right
		default:
			return 0, fmt.Errorf("%w: ESC a %d", ErrUnsupported, n)
		}
	case 'd':
		for i := 0; i < int(n); i++ {
			d.endLine()
		}
	case '!':
		d.style.Bold = n&0x08 != 0
		d.style.Height, d.style.Width = 1, 1
		if n&0x10 != 0 {
			d.style.Height = 2
		}
		if n&0x20 != 0 {
			d.style.Width = 2
		}
	case '-', '3', 'M', 'J', 'G', 'V', '{', 'R':
		// underline, line spacing, font, feed dots, double-strike,
		// rotation, upside down, international set: no effect on text.
	default:
		return 0, fmt.Errorf("%w: ESC 0x%02x", ErrUnsupported, cmd)
	}
	return 3, nil
}

func (d *Decoder) gs(p []byte) (int, error) {
	if err := need(p, 3); err != nil {
		return 0, err
	}
	cmd, n := p[1], p[2]
	switch cmd {
	case '!':
		d.style.Width = int(n>>4&7) + 1
		d.style.Height = int(n&7) + 1
		return 3, nil
	case 'H', 'h', 'w', 'f', 'B', 'L', 'W':
		if cmd == 'L' || cmd == 'W' { // left margin, print area: two bytes
			if err := need(p, 4); err != nil {
				return 0, err
			}
			return 4, nil
		}
		return 3, nil
	case 'V':
		switch n {
		case 0, 1, 48, 49:
			d.cut()
			return 3, nil
		case 65, 66, 97, 98, 103, 104:
			if err := need(p, 4); err != nil {
				return 0, err
			}
			d.cut()
			return 4, nil
		}
		return 0, fmt.Errorf("%w: GS V %d", ErrUnsupported, n)
	case 'k':
		return d.barcode(p)
	case 'v': // GS v 0 m xL xH yL yH data: a raster image (a logo)
		if n != '0' {
			return 0, fmt.Errorf("%w: GS v 0x%02x", ErrUnsupported, n)
		}
		if err := need(p, 8); err != nil {
			return 0, err
		}
		size := (int(p[4]) | int(p[5])<<8) * (int(p[6]) | int(p[7])<<8)
		if size > maxRaster {
			return 0, fmt.Errorf("%w: GS v 0 image of %d bytes, more than any receipt printer takes (%d)", ErrUnsupported, size, maxRaster)
		}
		if err := need(p, 8+size); err != nil {
			return 0, err
		}
		d.printCode("IMAGE", "")
		return 8 + size, nil
	case '(':
		if n != 'k' {
			return 0, fmt.Errorf("%w: GS ( 0x%02x", ErrUnsupported, n)
		}
		return d.code2D(p)
	}
	return 0, fmt.Errorf("%w: GS 0x%02x", ErrUnsupported, cmd)
}

func (d *Decoder) cut() {
	d.flush()
	d.doc.Cuts = append(d.doc.Cuts, len(d.doc.Lines))
}

var functionA = map[byte]string{0: "UPC-A", 1: "UPC-E", 2: "EAN-13", 3: "EAN-8", 4: "CODE39", 5: "ITF", 6: "CODABAR"}

var functionB = map[byte]string{65: "UPC-A", 66: "UPC-E", 67: "EAN-13", 68: "EAN-8", 69: "CODE39", 70: "ITF", 71: "CODABAR", 72: "CODE93", 73: "CODE128"}

func (d *Decoder) barcode(p []byte) (int, error) {
	m := p[2]
	if kind, ok := functionA[m]; ok {
		end := -1
		for i := 3; i < len(p); i++ {
			if p[i] == 0 {
				end = i
				break
			}
		}
		if end < 0 {
			if len(p) > 3+255 {
				return 0, fmt.Errorf("%w: GS k %d without its NUL terminator", ErrUnsupported, m)
			}
			return 0, errIncomplete
		}
		d.printCode(kind, string(p[3:end]))
		return end + 1, nil
	}
	kind, ok := functionB[m]
	if !ok {
		return 0, fmt.Errorf("%w: GS k %d: unknown barcode type", ErrUnsupported, m)
	}
	if err := need(p, 4); err != nil {
		return 0, err
	}
	n := int(p[3])
	if err := need(p, 4+n); err != nil {
		return 0, err
	}
	data := string(p[4 : 4+n])
	switch kind {
	case "CODE128":
		s, err := code128Text(p[4 : 4+n])
		if err != nil {
			return 0, err
		}
		data = s
	case "EAN-13":
		if (n != 12 && n != 13) || strings.Trim(data, "0123456789") != "" {
			return 0, fmt.Errorf("%w: GS k 67: EAN-13 data %q is not 12 or 13 digits", ErrUnsupported, data)
		}
		if n == 12 {
			data += string(EAN13Check(data))
		}
	}
	d.printCode(kind, data)
	return 4 + n, nil
}

// code128Text reads CODE128 data as sent with GS k 73: code set switches
// ({A {B {C), function characters ({1 to {4, {S shift) and "{{" for a
// brace. Code set C bytes are pairs of digits, 0 to 99.
func code128Text(p []byte) (string, error) {
	if len(p) < 2 || p[0] != '{' || (p[1] != 'A' && p[1] != 'B' && p[1] != 'C') {
		return "", fmt.Errorf("%w: GS k 73: CODE128 data must start with a code set ({A, {B or {C)", ErrUnsupported)
	}
	var b strings.Builder
	set := p[1]
	for i := 2; i < len(p); i++ {
		c := p[i]
		if c == '{' {
			if i+1 >= len(p) {
				return "", fmt.Errorf("%w: GS k 73: CODE128 data ends in a lone '{'", ErrUnsupported)
			}
			i++
			switch p[i] {
			case 'A', 'B', 'C':
				set = p[i]
			case '{':
				b.WriteByte('{')
			case '1', '2', '3', '4', 'S':
			default:
				return "", fmt.Errorf("%w: GS k 73: CODE128 escape {%c", ErrUnsupported, p[i])
			}
			continue
		}
		if set == 'C' {
			if c > 99 {
				return "", fmt.Errorf("%w: GS k 73: code set C byte %d is over 99", ErrUnsupported, c)
			}
			fmt.Fprintf(&b, "%02d", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func (d *Decoder) code2D(p []byte) (int, error) {
	if err := need(p, 5); err != nil {
		return 0, err
	}
	size := int(p[3]) | int(p[4])<<8
	if size < 2 {
		return 0, fmt.Errorf("%w: GS ( k with %d parameter bytes", ErrUnsupported, size)
	}
	if err := need(p, 5+size); err != nil {
		return 0, err
	}
	args := p[5 : 5+size]
	cn, fn := args[0], args[1]
	if cn != 49 { // PDF417, MaxiCode and others: not ours to read
		return 5 + size, nil
	}
	switch fn {
	case 65: // model
		if len(args) < 3 || (args[2] != 49 && args[2] != 50) {
			return 0, fmt.Errorf("%w: GS ( k QR model % x", ErrUnsupported, args[2:])
		}
	case 67:
		if len(args) != 3 || args[2] < 1 || args[2] > 16 {
			return 0, fmt.Errorf("%w: GS ( k QR module size % x (1 to 16)", ErrUnsupported, args[2:])
		}
		d.qrSize = int(args[2])
	case 69:
		if len(args) != 3 || args[2] < 48 || args[2] > 51 {
			return 0, fmt.Errorf("%w: GS ( k QR error correction % x (48 to 51)", ErrUnsupported, args[2:])
		}
		d.qrLevel = ECLevel(args[2])
	case 80:
		if len(args) < 3 || args[2] != 48 {
			return 0, fmt.Errorf("%w: GS ( k QR store with m % x (want 48)", ErrUnsupported, args[2:])
		}
		d.qrData = append(d.qrData[:0], args[3:]...)
	case 81:
		if len(d.qrData) == 0 {
			return 0, fmt.Errorf("%w: GS ( k QR print with no data stored", ErrUnsupported)
		}
		d.printCode("QR", string(d.qrData))
	}
	return 5 + size, nil
}

func (d *Decoder) printCode(kind, data string) {
	d.flush()
	c := Code{Kind: kind, Data: data, Line: len(d.doc.Lines), Align: d.style.Align}
	if kind == "QR" {
		c.ModuleSize, c.Level = d.qrSize, d.qrLevel
	}
	d.doc.Codes = append(d.doc.Codes, c)
}
