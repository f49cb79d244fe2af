package scanner

import (
	"errors"
	"fmt"

	"github.com/tillpoint/tillpoint/devices"
)

// Errors a scan can fail with. They never carry the label.
var (
	ErrEmpty      = errors.New("scanner: empty scan")
	ErrCheckDigit = errors.New("scanner: check digit does not match (misread); scan again")
	ErrMalformed  = errors.New("scanner: malformed barcode data; scan again")
	ErrTooLong    = errors.New("scanner: scan longer than the frame limit; check the scanner's suffix setting")
)

// MaxScan is the longest scan accepted, in bytes.
const MaxScan = 4096

// Label is a parsed scan: the label without the AIM identifier, its
// symbology, and the identifier itself if the scanner sent one.
type Label struct {
	Text      string
	Symbology devices.Symbology
	AIM       string
}

// aimSymbology maps an AIM symbology character and modifier to a type.
func aimSymbology(c, m byte) devices.Symbology {
	switch c {
	case 'E':
		switch m {
		case '4':
			return devices.SymEAN8
		default: // 0: EAN-13/UPC-A, 1-3: with add-on
			return devices.SymEAN13
		}
	case 'C':
		if m == '1' {
			return devices.SymGS1_128
		}
		return devices.SymCode128
	case 'Q':
		if m == '3' || m == '4' {
			return devices.SymGS1QR
		}
		return devices.SymQR
	case 'd':
		if m == '2' || m == '5' {
			return devices.SymGS1DataMatrix
		}
		return devices.SymDataMatrix
	case 'e':
		return devices.SymGS1DataBar
	case 'A':
		return devices.SymCode39
	case 'I':
		return devices.SymITF
	case 'F':
		return devices.SymCodabar
	case 'G':
		return devices.SymCode93
	case 'L':
		return devices.SymPDF417
	case 'z':
		return devices.SymAztec
	}
	return devices.SymUnknown
}

func isAIMModifier(m byte) bool {
	return m >= '0' && m <= '9' || m >= 'A' && m <= 'Z' || m >= 'a' && m <= 'z'
}

func isAIMChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// Parse turns one framed scan (suffix removed) into a Label: it strips and
// decodes an AIM identifier when present, infers EAN-13/EAN-8/UPC-A from
// all-digit data when not, and validates check digits (EAN/UPC, and GTIN,
// SSCC and GSRN element strings in GS1 symbologies). It never panics, and
// its errors never contain the data.
func Parse(data []byte) (Label, error) {
	if len(data) == 0 {
		return Label{}, ErrEmpty
	}
	if len(data) > MaxScan {
		return Label{}, ErrTooLong
	}
	var l Label
	body := data
	if len(data) >= 3 && data[0] == ']' && isAIMChar(data[1]) && isAIMModifier(data[2]) {
		l.AIM = string(data[:3])
		l.Symbology = aimSymbology(data[1], data[2])
		body = data[3:]
	}
	if len(body) == 0 {
		return Label{}, ErrEmpty
	}
	for _, c := range body {
		// Printable ASCII, and GS (FNC1 in GS1 data). Anything else is line
		// noise or a wrong baud rate.
		if (c < ' ' || c > '~') && c != gs {
			return Label{}, fmt.Errorf("%w: control or non-ASCII byte 0x%02x (check the scanner's baud rate and parity)", ErrMalformed, c)
		}
	}
	l.Text = string(body)
	if l.AIM == "" {
		l.Symbology = infer(l.Text)
	}
	if err := validate(l); err != nil {
		return Label{}, err
	}
	return l, nil
}

// infer guesses the symbology of a scan sent without an AIM identifier.
// Only all-digit EAN/UPC lengths are recognised; the rest stays unknown.
func infer(s string) devices.Symbology {
	if !allDigits(s) {
		return devices.SymUnknown
	}
	switch len(s) {
	case 13:
		return devices.SymEAN13
	case 8:
		return devices.SymEAN8
	case 12:
		return devices.SymUPCA
	}
	return devices.SymUnknown
}

func validate(l Label) error {
	switch l.Symbology {
	case devices.SymEAN13:
		s := l.Text
		if len(s) > 13 && l.AIM != "" && l.AIM != "]E0" { // EAN-13 with a 2- or 5-digit add-on
			s = s[:13]
		}
		if len(s) == 12 { // UPC-A sent as ]E0 by some scanners
			s = "0" + s
		}
		if len(s) != 13 || !allDigits(s) {
			return fmt.Errorf("%w: EAN-13 must be 13 digits, got %d characters", ErrMalformed, len(l.Text))
		}
		return checkMod10(s)
	case devices.SymEAN8:
		if len(l.Text) != 8 || !allDigits(l.Text) {
			return fmt.Errorf("%w: EAN-8 must be 8 digits, got %d characters", ErrMalformed, len(l.Text))
		}
		return checkMod10(l.Text)
	case devices.SymUPCA:
		return checkMod10(l.Text)
	}
	if l.Symbology.GS1() {
		_, err := ParseGS1(l.Text)
		return err
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CheckDigit computes the GS1 mod-10 check digit of digits (without the
// check digit): weights 3 and 1 alternating from the right.
func CheckDigit(digits string) (byte, error) {
	if !allDigits(digits) {
		return 0, fmt.Errorf("%w: check digit of non-digits", ErrMalformed)
	}
	sum := 0
	for i := 0; i < len(digits); i++ {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10), nil
}

// checkMod10 validates the last digit of s as the GS1 check digit of the rest.
func checkMod10(s string) error {
	if len(s) < 2 || !allDigits(s) {
		return fmt.Errorf("%w: a GS1 number is digits only", ErrMalformed)
	}
	want, _ := CheckDigit(s[:len(s)-1])
	if s[len(s)-1] != want {
		return ErrCheckDigit
	}
	return nil
}

// RestrictedCirculation reports whether an EAN-13 is a GS1 restricted
// circulation number (prefix 20 to 29): store-internal numbers, the range
// loyalty card programmes print.
func RestrictedCirculation(ean13 string) bool {
	return len(ean13) == 13 && allDigits(ean13) && ean13[0] == '2'
}
