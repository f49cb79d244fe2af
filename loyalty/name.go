package loyalty

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidName reports an identifier (a terminal's, a store's, a
// member's) that the system cannot carry everywhere it goes.
var ErrInvalidName = errors.New("loyalty: invalid name")

// CheckName checks an identifier: 1 to MaxFieldLen bytes of UTF-8 with no
// control characters and no space at either end. Such a name fits every
// column, log line, receipt and HTTP header it ends up in as it is:
// PostgreSQL, for one, refuses a NUL in text, and HTTP drops the spaces
// at the ends of a header's value. what names the field in the error.
func CheckName(what, s string) error {
	switch {
	case s == "" || len(s) > MaxFieldLen:
		return fmt.Errorf("%w: %s must be 1 to %d bytes, got %d", ErrInvalidName, what, MaxFieldLen, len(s))
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalidName, what)
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("%w: %s %q holds a control character", ErrInvalidName, what, s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%w: %s %q begins or ends with a space", ErrInvalidName, what, s)
	}
	return nil
}

// hasNUL reports whether any of texts holds a NUL, which no text column
// of PostgreSQL's stores.
func hasNUL(texts ...string) bool {
	for _, s := range texts {
		if strings.IndexByte(s, 0) >= 0 {
			return true
		}
	}
	return false
}
