package loyalty

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// CardKind says how a loyalty card was presented.
type CardKind uint8

const (
	CardBarcode CardKind = 1 // a printed card's barcode (EAN-13, GSRN, Code128)
	CardNFC     CardKind = 2 // an NFC card's UID
	CardAppQR   CardKind = 3 // the QR code shown by the program's app
)

func (k CardKind) String() string {
	switch k {
	case CardBarcode:
		return "barcode"
	case CardNFC:
		return "nfc"
	case CardAppQR:
		return "app"
	}
	return fmt.Sprintf("cardkind(%d)", uint8(k))
}

// ParseCardKind is the inverse of CardKind.String.
func ParseCardKind(s string) (CardKind, error) {
	switch s {
	case "barcode":
		return CardBarcode, nil
	case "nfc":
		return CardNFC, nil
	case "app":
		return CardAppQR, nil
	}
	return 0, fmt.Errorf("%w: unknown card kind %q (want barcode, nfc or app)", ErrInvalidCard, s)
}

// ErrInvalidCard reports a card value that cannot be a loyalty card.
var ErrInvalidCard = errors.New("loyalty: invalid card")

// CardToken is a card as presented at the till. Its value is a secret in
// the sense of invariant 7: String, GoString, slog and JSON all show only a
// redacted form; Reveal is the one way to the clear value, for the keyed hash
// and for an installer's explicit --reveal.
type CardToken struct {
	kind  CardKind
	value string
}

// NewCardToken validates and normalizes a card value: NFC UIDs become
// upper-case hex of 4, 7 or 10 bytes; barcodes and app codes are printable
// ASCII without spaces, 4 to 64 bytes.
func NewCardToken(kind CardKind, value string) (CardToken, error) {
	switch kind {
	case CardNFC:
		v := strings.ToUpper(strings.ReplaceAll(value, ":", ""))
		b, err := hex.DecodeString(v)
		if err != nil || (len(b) != 4 && len(b) != 7 && len(b) != 10) {
			return CardToken{}, fmt.Errorf("%w: an NFC UID is 4, 7 or 10 bytes of hex", ErrInvalidCard)
		}
		return CardToken{kind, v}, nil
	case CardBarcode, CardAppQR:
		if len(value) < 4 || len(value) > MaxFieldLen {
			return CardToken{}, fmt.Errorf("%w: a %s value is 4 to %d characters, got %d", ErrInvalidCard, kind, MaxFieldLen, len(value))
		}
		for i := 0; i < len(value); i++ {
			if value[i] <= ' ' || value[i] > '~' {
				return CardToken{}, fmt.Errorf("%w: a %s value is printable ASCII without spaces", ErrInvalidCard, kind)
			}
		}
		return CardToken{kind, value}, nil
	}
	return CardToken{}, fmt.Errorf("%w: unknown card kind %d", ErrInvalidCard, kind)
}

// ParseCardToken reads the "kind:value" form used by the CLI and the local
// API, e.g. "nfc:04A1B2C3D4E5F6" or "barcode:2012345678903".
func ParseCardToken(s string) (CardToken, error) {
	kind, value, ok := strings.Cut(s, ":")
	if !ok {
		return CardToken{}, fmt.Errorf("%w: want kind:value, e.g. nfc:04A1B2C3 or barcode:2012345678903", ErrInvalidCard)
	}
	k, err := ParseCardKind(kind)
	if err != nil {
		return CardToken{}, err
	}
	return NewCardToken(k, value)
}

// Kind returns how the card was presented.
func (t CardToken) Kind() CardKind { return t.kind }

// IsZero reports whether t is the zero token (no card).
func (t CardToken) IsZero() bool { return t.kind == 0 }

// Reveal returns the clear "kind:value" form. Never log it.
func (t CardToken) Reveal() string {
	if t.IsZero() {
		return ""
	}
	return t.kind.String() + ":" + t.value
}

// String returns the redacted form: the kind and the last four characters,
// e.g. "nfc:••••E5F6".
func (t CardToken) String() string {
	if t.IsZero() {
		return "none"
	}
	return t.kind.String() + ":" + Redact(t.value)
}

// GoString keeps %#v redacted too.
func (t CardToken) GoString() string { return "loyalty.CardToken(" + t.String() + ")" }

// LogValue makes slog print the redacted form.
func (t CardToken) LogValue() slog.Value { return slog.StringValue(t.String()) }

// MarshalJSON writes the redacted form, so a token that slips into a JSON
// document does not leak. Parse the clear form with ParseCardToken.
func (t CardToken) MarshalJSON() ([]byte, error) { return []byte(`"` + t.String() + `"`), nil }

// Redact masks all but the last four characters of a card value.
func Redact(value string) string {
	if len(value) <= 4 {
		return "••••"
	}
	return "••••" + value[len(value)-4:]
}

// CardKey is the program's secret for keyed card hashes. The cloud stores
// cards only as CardHash values computed with it (invariant 7).
type CardKey []byte

// CardHash is HMAC-SHA-256(CardKey, kind || value): what journals, batches
// and the ledger store and compare instead of the card.
type CardHash [32]byte

// Hash returns the keyed hash of t under key. The zero token hashes to the zero CardHash.
func (t CardToken) Hash(key CardKey) CardHash {
	var h CardHash
	if t.IsZero() {
		return h
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte{byte(t.kind)})
	mac.Write([]byte(t.value))
	copy(h[:], mac.Sum(nil))
	return h
}

// IsZero reports whether h is the zero hash (no card).
func (h CardHash) IsZero() bool { return h == CardHash{} }

// String returns the full hex hash; it is keyed, so it reveals no card.
func (h CardHash) String() string { return hex.EncodeToString(h[:]) }

// Short returns the first 8 hex digits, enough to tell cards apart in logs.
func (h CardHash) Short() string { return hex.EncodeToString(h[:4]) }

// MarshalText writes the hash as hex.
func (h CardHash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads a hash written by MarshalText.
func (h *CardHash) UnmarshalText(b []byte) error {
	parsed, err := ParseCardHash(string(b))
	if err != nil {
		return err
	}
	*h = parsed
	return nil
}

// ParseCardHash reads 64 hex digits.
func ParseCardHash(s string) (CardHash, error) {
	var h CardHash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%w: a card hash is 64 hex digits", ErrInvalidCard)
	}
	copy(h[:], b)
	return h, nil
}
