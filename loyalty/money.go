package loyalty

import (
	"errors"
	"fmt"
	"strconv"
)

// Currency is an ISO 4217 alphabetic code such as "EUR".
type Currency string

// Validate reports whether c looks like an ISO 4217 code: three upper-case letters.
func (c Currency) Validate() error {
	if len(c) != 3 {
		return fmt.Errorf("%w: %q is not a three-letter ISO 4217 code", ErrInvalidCurrency, string(c))
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return fmt.Errorf("%w: %q is not a three-letter ISO 4217 code", ErrInvalidCurrency, string(c))
		}
	}
	return nil
}

// MinorUnits is the number of decimal places of the currency's minor unit
// (2 for EUR, 0 for JPY, 3 for KWD). Codes not listed default to 2.
func (c Currency) MinorUnits() int {
	switch c {
	case "JPY", "KRW", "CLP", "ISK", "VND", "XAF", "XOF":
		return 0
	case "BHD", "KWD", "OMR", "JOD", "TND", "LYD", "IQD":
		return 3
	}
	return 2
}

// ErrInvalidCurrency reports a currency code that is not ISO 4217 shaped.
var ErrInvalidCurrency = errors.New("loyalty: invalid currency")

// Money is an amount in the currency's minor units (cents for EUR): no
// floating point touches it.
type Money struct {
	Amount   int64    `json:"amount"`
	Currency Currency `json:"currency"`
}

// String formats the amount with its minor units, e.g. "12.34 EUR".
func (m Money) String() string {
	return FormatAmount(m.Amount, m.Currency.MinorUnits()) + " " + string(m.Currency)
}

// FormatAmount formats minor units as a decimal with the given places: 1234, 2 is "12.34".
func FormatAmount(minor int64, places int) string {
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = uint64(-minor)
	}
	s := strconv.FormatUint(u, 10)
	if places > 0 {
		for len(s) <= places {
			s = "0" + s
		}
		s = s[:len(s)-places] + "." + s[len(s)-places:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
