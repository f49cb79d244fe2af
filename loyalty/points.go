package loyalty

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Points is an amount of loyalty points. Balances and deltas are integral:
// no fractions of a point exist anywhere on the ledger path.
type Points int64

func (p Points) String() string { return strconv.FormatInt(int64(p), 10) }

// MaxOpPoints bounds the points one op moves (a trillion): Op.Validate
// refuses more, Rules.Validate bounds every figure of the rules by it, and
// Rules.Earn refuses a basket that would earn more. So the sums of ops,
// balances and allowances stay far inside int64.
const MaxOpPoints Points = 1_000_000_000_000

// ErrOverflow reports arithmetic that would leave the int64 range.
var ErrOverflow = errors.New("loyalty: points overflow")

// Add returns p+q, or ErrOverflow.
func (p Points) Add(q Points) (Points, error) {
	if (q > 0 && p > math.MaxInt64-q) || (q < 0 && p < math.MinInt64-q) {
		return 0, fmt.Errorf("%w: %d + %d", ErrOverflow, p, q)
	}
	return p + q, nil
}

// Multiplier is a rate in hundredths: 100 is x1, 150 is x1.5, 200 is x2.
// In JSON and on receipts it reads as a decimal ("1.5").
type Multiplier int64

// One is the neutral multiplier, x1.
const One Multiplier = 100

func (m Multiplier) String() string {
	whole, frac := int64(m)/100, int64(m)%100
	switch {
	case frac == 0:
		return strconv.FormatInt(whole, 10)
	case frac%10 == 0:
		return fmt.Sprintf("%d.%d", whole, frac/10)
	default:
		return fmt.Sprintf("%d.%02d", whole, frac)
	}
}

// MarshalText writes the multiplier as a decimal with up to two places.
func (m Multiplier) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a decimal such as "2", "1.5" or "1.25".
func (m *Multiplier) UnmarshalText(b []byte) error {
	v, err := ParseMultiplier(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseMultiplier reads a non-negative decimal multiplier with at most two
// decimal places, without going through floating point.
func ParseMultiplier(s string) (Multiplier, error) {
	bad := fmt.Errorf("loyalty: multiplier %q: want a decimal such as 2 or 1.5 with at most two decimal places", s)
	whole, frac, hasFrac := cut(s, '.')
	if whole == "" || len(frac) > 2 || (hasFrac && frac == "") {
		return 0, bad
	}
	w, err := strconv.ParseUint(whole, 10, 31)
	if err != nil {
		return 0, bad
	}
	var f uint64
	if frac != "" {
		if f, err = strconv.ParseUint(frac, 10, 8); err != nil {
			return 0, bad
		}
		if len(frac) == 1 {
			f *= 10
		}
	}
	return Multiplier(w*100 + f), nil
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
