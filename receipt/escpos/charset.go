package escpos

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"
)

// CodePage is a printer character code table. Its value is the n of ESC t n
// on Epson-compatible printers.
type CodePage uint8

// The code pages this package transcodes to. CP858 is CP850 with the euro
// sign in place of the dotless i; WPC1252 is Windows-1252.
const (
	CP437   CodePage = 0
	CP850   CodePage = 2
	WPC1252 CodePage = 16
	CP858   CodePage = 19
)

// CodePages lists the supported code pages.
func CodePages() []CodePage { return []CodePage{CP437, CP850, CP858, WPC1252} }

func (c CodePage) String() string {
	switch c {
	case CP437:
		return "cp437"
	case CP850:
		return "cp850"
	case CP858:
		return "cp858"
	case WPC1252:
		return "wpc1252"
	}
	return fmt.Sprintf("codepage(%d)", uint8(c))
}

// ParseCodePage reads a code page name as printed by String ("cp858"), or
// its number alone ("858", "1252").
func ParseCodePage(s string) (CodePage, error) {
	v := strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(s), "wpc"), "cp")
	switch v {
	case "437":
		return CP437, nil
	case "850":
		return CP850, nil
	case "858":
		return CP858, nil
	case "1252":
		return WPC1252, nil
	}
	return 0, fmt.Errorf("escpos: unknown code page %q (want cp437, cp850, cp858 or wpc1252)", s)
}

func (c CodePage) charmap() *charmap.Charmap {
	switch c {
	case CP437:
		return charmap.CodePage437
	case CP850:
		return charmap.CodePage850
	case CP858:
		return charmap.CodePage858
	case WPC1252:
		return charmap.Windows1252
	}
	return nil
}

// Valid reports whether c is a code page this package supports.
func (c CodePage) Valid() bool { return c.charmap() != nil }

// DecodeByte returns the character byte b prints as in code page c. Bytes
// below 0x20 are controls, not characters; DecodeByte returns them as is.
func (c CodePage) DecodeByte(b byte) rune {
	m := c.charmap()
	if m == nil || b < 0x80 {
		return rune(b)
	}
	return m.DecodeByte(b)
}

// Encode appends s, transcoded to code page c, to dst. Characters the page
// lacks become their fallback (see Fallback); control characters are
// dropped, except tab, which becomes a space, and so are combining marks
// that do not compose with the letter before them. The output never holds a
// byte below 0x20, 0x7F, or a byte the page maps to no character.
func (c CodePage) Encode(dst []byte, s string) []byte {
	m := c.charmap()
	if m == nil {
		m = charmap.CodePage437
	}
	if !isASCII(s) && !norm.NFC.IsNormalString(s) {
		s = norm.NFC.String(s)
	}
	for _, r := range s {
		dst = encodeRune(dst, m, r)
	}
	return dst
}

// Printable returns s as it will print in code page c: Encode followed by
// decoding. Layouts measure text with it, so a fallback that is longer
// than its character (€ to EUR) still fits the line.
func (c CodePage) Printable(s string) string {
	if isASCII(s) && !hasControl(s) {
		return s
	}
	enc := c.Encode(make([]byte, 0, len(s)), s)
	var b strings.Builder
	b.Grow(len(enc))
	for _, x := range enc {
		b.WriteRune(c.DecodeByte(x))
	}
	return b.String()
}

func encodeRune(dst []byte, m *charmap.Charmap, r rune) []byte {
	switch {
	case r == '\t':
		return append(dst, ' ')
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
		return dst // controls, C0 and C1: dropped, never printed as a glyph
	case r < 0x80:
		return append(dst, byte(r))
	case unicode.Is(unicode.Mn, r):
		return dst // a combining mark left over after composing: the base letter stands alone
	case r != utf8.RuneError:
		if b, ok := m.EncodeRune(r); ok && b >= 0x20 && b != 0x7f {
			return append(dst, b)
		}
	}
	for _, f := range Fallback(r) {
		if f < 0x80 {
			dst = append(dst, byte(f))
		} else if b, ok := m.EncodeRune(f); ok && b >= 0x20 {
			dst = append(dst, b)
		} else {
			dst = append(dst, '?')
		}
	}
	return dst
}

// fallbacks are the characters a canonical decomposition does not reduce to
// ASCII, mapped to what a reader expects in their place.
var fallbacks = map[rune]string{
	'€': "EUR", '£': "GBP", '¥': "JPY", '¢': "c",
	'•': "*", '·': ".", '∙': ".", '◦': "o",
	'‘': "'", '’': "'", '‚': "'", '′': "'", '´': "'", '`': "'",
	'“': "\"", '”': "\"", '„': "\"", '″': "\"", '«': "<<", '»': ">>",
	'‐': "-", '‑': "-", '–': "-", '—': "-", '−': "-",
	'…': "...", '™': "TM", '©': "(C)", '®': "(R)", '°': "o",
	'ß': "ss", 'Æ': "AE", 'æ': "ae", 'Œ': "OE", 'œ': "oe", 'Ø': "O", 'ø': "o",
	'Đ': "D", 'đ': "d", 'Ł': "L", 'ł': "l", 'ı': "i", 'Þ': "Th", 'þ': "th",
	'Ð': "D", 'ð': "d", '×': "x", '÷': "/", '≤': "<=", '≥': ">=", '→': "->",
	'←': "<-", '¡': "!", '¿': "?", 'º': "o", 'ª': "a", '½': "1/2", '¼': "1/4",
	'\u00a0': " ", '\u2009': " ", '\u202f': " ",
}

// Fallback returns what prints in place of r on a page that lacks it: a
// listed replacement (€ to "EUR", • to "*", ß to "ss"), else r without its
// accents (é to "e", ñ to "n"), else "?". The result is printable ASCII.
func Fallback(r rune) string {
	if f, ok := fallbacks[r]; ok {
		return f
	}
	var b strings.Builder
	for _, d := range norm.NFD.String(string(r)) {
		if d < 0x80 && d >= 0x20 {
			b.WriteRune(d)
		} else if unicode.IsLetter(d) && !unicode.Is(unicode.Mn, d) {
			return "?"
		}
	}
	if b.Len() == 0 {
		return "?"
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
