package scanner

import (
	"fmt"
	"strings"
)

// gs is ASCII group separator, FNC1 inside GS1 data.
const gs = 0x1d

// Element is one GS1 element string: an application identifier and its data.
type Element struct {
	AI   string
	Data string
}

// ai describes an application identifier: its data length (fixed when min
// == max) and whether its last digit is a mod-10 check digit.
type ai struct {
	min, max int
	check    bool
	numeric  bool
}

// spec describes the AIs that loyalty and retail scans carry. An AI not
// here makes the element string malformed: better to reject than to guess
// where its data ends.
func spec(id string) (ai, bool) {
	switch id {
	case "00": // SSCC
		return ai{18, 18, true, true}, true
	case "01": // GTIN
		return ai{14, 14, true, true}, true
	case "02": // GTIN of contained items
		return ai{14, 14, true, true}, true
	case "10": // batch or lot
		return ai{1, 20, false, false}, true
	case "11": // production date
		return ai{6, 6, false, true}, true
	case "13": // packaging date
		return ai{6, 6, false, true}, true
	case "15": // best before
		return ai{6, 6, false, true}, true
	case "17": // expiry date
		return ai{6, 6, false, true}, true
	case "21": // serial number
		return ai{1, 20, false, false}, true
	case "30": // count
		return ai{1, 8, false, true}, true
	case "37": // count of trade items
		return ai{1, 8, false, true}, true
	case "90": // company internal
		return ai{1, 30, false, false}, true
	case "91":
		return ai{1, 90, false, false}, true
	case "92":
		return ai{1, 90, false, false}, true
	case "93":
		return ai{1, 90, false, false}, true
	case "94":
		return ai{1, 90, false, false}, true
	case "95":
		return ai{1, 90, false, false}, true
	case "96":
		return ai{1, 90, false, false}, true
	case "97":
		return ai{1, 90, false, false}, true
	case "98":
		return ai{1, 90, false, false}, true
	case "99":
		return ai{1, 90, false, false}, true
	case "8017": // GSRN provider
		return ai{18, 18, true, true}, true
	case "8018": // GSRN recipient: loyalty memberships
		return ai{18, 18, true, true}, true
	case "8019": // service relation instance number
		return ai{1, 10, false, true}, true
	case "8020": // payment slip reference
		return ai{1, 25, false, false}, true
	case "8200": // product URL
		return ai{1, 70, false, false}, true
	}
	return ai{}, false
}

// predefinedLength lists the two-digit AI prefixes whose data is predefined
// length (GS1 General Specifications, figure 7.8.5-2): no FNC1 follows them.
func predefinedLength(id string) bool {
	switch id[:2] {
	case "00", "01", "02", "03", "04", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20",
		"31", "32", "33", "34", "35", "36", "41":
		return true
	}
	return false
}

// ParseGS1 splits GS1 element strings (FNC1 transmitted as GS, a leading GS
// tolerated) into elements and validates their lengths and check digits.
// Errors say which AI failed and never contain the data.
func ParseGS1(s string) ([]Element, error) {
	s = strings.TrimPrefix(s, string(rune(gs)))
	if s == "" {
		return nil, fmt.Errorf("%w: empty GS1 data", ErrMalformed)
	}
	var out []Element
	for s != "" {
		id, sp, ok := lookupAI(s)
		if !ok {
			return nil, fmt.Errorf("%w: unknown or unsupported GS1 application identifier", ErrMalformed)
		}
		s = s[len(id):]
		n := sp.max
		if sp.min != sp.max || !predefinedLength(id) {
			// Variable length (or fixed but not predefined: FNC1 may follow):
			// up to GS or the end.
			n = strings.IndexByte(s, gs)
			if n < 0 {
				n = len(s)
			}
		}
		if n > len(s) {
			return nil, fmt.Errorf("%w: AI (%s) wants %d characters, %d left", ErrMalformed, id, n, len(s))
		}
		data := s[:n]
		s = s[n:]
		s = strings.TrimPrefix(s, string(rune(gs)))
		if len(data) < sp.min || len(data) > sp.max {
			return nil, fmt.Errorf("%w: AI (%s) takes %d to %d characters, got %d", ErrMalformed, id, sp.min, sp.max, len(data))
		}
		if sp.numeric && !allDigits(data) {
			return nil, fmt.Errorf("%w: AI (%s) takes digits only", ErrMalformed, id)
		}
		if sp.check {
			if err := checkMod10(data); err != nil {
				return nil, fmt.Errorf("AI (%s): %w", id, err)
			}
		}
		out = append(out, Element{AI: id, Data: data})
	}
	return out, nil
}

func lookupAI(s string) (string, ai, bool) {
	for _, n := range []int{2, 3, 4} {
		if len(s) < n {
			break
		}
		if sp, ok := spec(s[:n]); ok {
			return s[:n], sp, true
		}
	}
	return "", ai{}, false
}

// GSRN returns the 18-digit GSRN recipient number (AI 8018) from GS1 data,
// the form of many loyalty membership cards.
func GSRN(s string) (string, bool) {
	els, err := ParseGS1(s)
	if err != nil {
		return "", false
	}
	for _, e := range els {
		if e.AI == "8018" {
			return e.Data, true
		}
	}
	return "", false
}
