package escpos

import (
	"errors"
	"fmt"
)

// Align is a line's justification (ESC a n).
type Align uint8

const (
	Left   Align = 0
	Center Align = 1
	Right  Align = 2
)

func (a Align) String() string {
	switch a {
	case Left:
		return "left"
	case Center:
		return "center"
	case Right:
		return "right"
	}
	return fmt.Sprintf("align(%d)", uint8(a))
}

// ECLevel is a QR code's error correction level.
type ECLevel uint8

const (
	ECLevelL ECLevel = 48 // recovers about 7% of the symbol
	ECLevelM ECLevel = 49 // about 15%
	ECLevelQ ECLevel = 50 // about 25%
	ECLevelH ECLevel = 51 // about 30%
)

func (l ECLevel) String() string {
	if l >= ECLevelL && l <= ECLevelH {
		return string("LMQH"[l-ECLevelL])
	}
	return fmt.Sprintf("eclevel(%d)", uint8(l))
}

// Symbology is a one-dimensional barcode type: the m of GS k m n (function B).
type Symbology uint8

const (
	EAN13   Symbology = 67
	CODE128 Symbology = 73
)

func (s Symbology) String() string {
	switch s {
	case EAN13:
		return "EAN-13"
	case CODE128:
		return "CODE128"
	}
	return fmt.Sprintf("symbology(%d)", uint8(s))
}

// QR holds the settings of a QR code. The zero value prints a model 2
// code with module size 4 at error correction M.
type QR struct {
	// ModuleSize is the side of one module in dots, 1 to 16 (0 means 4).
	ModuleSize int
	// Level is the error correction level (0 means ECLevelM).
	Level ECLevel
}

// MaxQRData is the most a QR code holds (version 40, level L, bytes).
const MaxQRData = 2953

// Builder errors: what a Builder records and Bytes returns.
var (
	ErrBadArgument = errors.New("escpos: bad argument")
	ErrBadBarcode  = errors.New("escpos: bad barcode data")
)

// Builder accumulates ESC/POS commands. Its methods chain; the first error
// (a bad argument) sticks, later calls do nothing, and Bytes returns it.
// The zero Builder is ready to use and writes CP437 text until CodePage.
type Builder struct {
	buf  []byte
	page CodePage
	err  error
}

// NewBuilder returns a Builder with room for size bytes.
func NewBuilder(size int) *Builder { return &Builder{buf: make([]byte, 0, size)} }

// Reset empties the builder for reuse, keeping its buffer.
func (b *Builder) Reset() {
	b.buf, b.page, b.err = b.buf[:0], CP437, nil
}

// Bytes returns the commands built so far, or the first error.
func (b *Builder) Bytes() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	return b.buf, nil
}

func (b *Builder) fail(err error) *Builder {
	if b.err == nil {
		b.err = err
	}
	return b
}

// Init resets the printer (ESC @): code page 437, no emphasis, normal
// size, left aligned.
func (b *Builder) Init() *Builder {
	if b.err == nil {
		b.buf = append(b.buf, 0x1b, '@')
		b.page = CP437
	}
	return b
}

// CodePage selects the character code table (ESC t n); Text transcodes to it.
func (b *Builder) CodePage(c CodePage) *Builder {
	if b.err != nil {
		return b
	}
	if !c.Valid() {
		return b.fail(fmt.Errorf("%w: code page %d; use CP437, CP850, CP858 or WPC1252", ErrBadArgument, c))
	}
	b.buf = append(b.buf, 0x1b, 't', byte(c))
	b.page = c
	return b
}

// Bold turns emphasis on or off (ESC E n).
func (b *Builder) Bold(on bool) *Builder {
	if b.err == nil {
		b.buf = append(b.buf, 0x1b, 'E', boolByte(on))
	}
	return b
}

// Size sets the character magnification, width and height 1 to 8 (GS ! n).
func (b *Builder) Size(width, height int) *Builder {
	if b.err != nil {
		return b
	}
	if width < 1 || width > 8 || height < 1 || height > 8 {
		return b.fail(fmt.Errorf("%w: character size %dx%d; width and height are 1 to 8", ErrBadArgument, width, height))
	}
	b.buf = append(b.buf, 0x1d, '!', byte((width-1)<<4|(height-1)))
	return b
}

// Align sets the justification of the lines that follow (ESC a n). A
// printer applies it at the start of a line.
func (b *Builder) Align(a Align) *Builder {
	if b.err != nil {
		return b
	}
	if a > Right {
		return b.fail(fmt.Errorf("%w: alignment %d", ErrBadArgument, a))
	}
	b.buf = append(b.buf, 0x1b, 'a', byte(a))
	return b
}

// Text appends s transcoded to the current code page, without a line feed.
func (b *Builder) Text(s string) *Builder {
	if b.err == nil {
		b.buf = b.page.Encode(b.buf, s)
	}
	return b
}

// Line appends s and a line feed (LF), which prints it.
func (b *Builder) Line(s string) *Builder {
	if b.err == nil {
		b.buf = append(b.page.Encode(b.buf, s), '\n')
	}
	return b
}

// Feed prints the buffer and feeds n lines, 0 to 255 (ESC d n).
func (b *Builder) Feed(n int) *Builder {
	if b.err != nil {
		return b
	}
	if n < 0 || n > 255 {
		return b.fail(fmt.Errorf("%w: feed %d lines; 0 to 255", ErrBadArgument, n))
	}
	b.buf = append(b.buf, 0x1b, 'd', byte(n))
	return b
}

// QR prints data as a model 2 QR code (GS ( k: model, module size, error
// correction, store, print). data is sent as bytes, not transcoded.
func (b *Builder) QR(data string, q QR) *Builder {
	if b.err != nil {
		return b
	}
	size, level := q.ModuleSize, q.Level
	if size == 0 {
		size = 4
	}
	if level == 0 {
		level = ECLevelM
	}
	switch {
	case size < 1 || size > 16:
		return b.fail(fmt.Errorf("%w: QR module size %d; 1 to 16 dots", ErrBadArgument, size))
	case level < ECLevelL || level > ECLevelH:
		return b.fail(fmt.Errorf("%w: QR error correction %d", ErrBadArgument, level))
	case len(data) == 0 || len(data) > MaxQRData:
		return b.fail(fmt.Errorf("%w: QR data of %d bytes; 1 to %d", ErrBadArgument, len(data), MaxQRData))
	}
	b.buf = append(b.buf,
		0x1d, '(', 'k', 4, 0, 49, 65, 50, 0, // model 2
		0x1d, '(', 'k', 3, 0, 49, 67, byte(size),
		0x1d, '(', 'k', 3, 0, 49, 69, byte(level))
	n := len(data) + 3
	b.buf = append(b.buf, 0x1d, '(', 'k', byte(n), byte(n>>8), 49, 80, 48)
	b.buf = append(b.buf, data...)
	b.buf = append(b.buf, 0x1d, '(', 'k', 3, 0, 49, 81, 48)
	return b
}

// Barcode prints data as a CODE128 (printable ASCII, up to 253 characters)
// or EAN-13 (12 digits, or 13 with a correct check digit) barcode, with its
// human-readable text below, 80 dots high, module width 2 (GS H, GS h, GS w, GS k).
func (b *Builder) Barcode(s Symbology, data string) *Builder {
	if b.err != nil {
		return b
	}
	var payload []byte
	switch s {
	case EAN13:
		digits, err := ean13(data)
		if err != nil {
			return b.fail(err)
		}
		payload = []byte(digits)
	case CODE128:
		if len(data) == 0 {
			return b.fail(fmt.Errorf("%w: empty CODE128 data", ErrBadBarcode))
		}
		payload = append(payload, '{', 'B')
		for i := 0; i < len(data); i++ {
			c := data[i]
			if c < 0x20 || c > 0x7e {
				return b.fail(fmt.Errorf("%w: CODE128 data holds byte 0x%02x at %d; printable ASCII only", ErrBadBarcode, c, i))
			}
			if c == '{' {
				payload = append(payload, '{') // "{{" is a literal brace
			}
			payload = append(payload, c)
		}
		if len(payload) > 255 {
			return b.fail(fmt.Errorf("%w: CODE128 data of %d characters is too long for one barcode", ErrBadBarcode, len(data)))
		}
	default:
		return b.fail(fmt.Errorf("%w: symbology %d; use EAN13 or CODE128", ErrBadArgument, s))
	}
	b.buf = append(b.buf, 0x1d, 'H', 2, 0x1d, 'h', 80, 0x1d, 'w', 2, 0x1d, 'k', byte(s), byte(len(payload)))
	b.buf = append(b.buf, payload...)
	return b
}

// Cut feeds the paper to the cutter and cuts it partially (GS V 66 0).
func (b *Builder) Cut() *Builder {
	if b.err == nil {
		b.buf = append(b.buf, 0x1d, 'V', 66, 0)
	}
	return b
}

// Raw appends bytes as they are, for commands this builder does not know.
func (b *Builder) Raw(p []byte) *Builder {
	if b.err == nil {
		b.buf = append(b.buf, p...)
	}
	return b
}

func boolByte(on bool) byte {
	if on {
		return 1
	}
	return 0
}

// ean13 validates an EAN-13 number and returns its 13 digits: 12 digits get
// their check digit, 13 must carry the right one.
func ean13(s string) (string, error) {
	if len(s) != 12 && len(s) != 13 {
		return "", fmt.Errorf("%w: EAN-13 needs 12 or 13 digits, got %d characters", ErrBadBarcode, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", fmt.Errorf("%w: EAN-13 holds %q at %d; digits only", ErrBadBarcode, s[i], i)
		}
	}
	check := EAN13Check(s[:12])
	if len(s) == 13 && s[12] != check {
		return "", fmt.Errorf("%w: EAN-13 %s has check digit %c, want %c; check the number", ErrBadBarcode, s, s[12], check)
	}
	return s[:12] + string(check), nil
}

// EAN13Check returns the check digit of 12 EAN-13 digits.
func EAN13Check(digits12 string) byte {
	sum := 0
	for i := 0; i < 12 && i < len(digits12); i++ {
		d := int(digits12[i] - '0')
		if i%2 == 1 {
			d *= 3
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}
