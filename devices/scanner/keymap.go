package scanner

// Linux key codes (linux/input-event-codes.h) that matter to a scanner.
const (
	keyEsc        = 1
	keyTab        = 15
	keyEnter      = 28
	keyLeftCtrl   = 29
	keyLeftShift  = 42
	keyRightShift = 54
	keyLeftAlt    = 56
	keyCapsLock   = 58
	keyKPEnter    = 96
	keyRightCtrl  = 97
	keyRightAlt   = 100
)

// Keymap turns a key code and the Shift state into a character: what the
// keyboard layout the scanner emulates puts on that key. 0 means none.
type Keymap func(code uint16, shift bool) byte

// keypad keys are the same on every layout (Num Lock on).
func keypad(code uint16) (byte, bool) {
	switch code {
	case 71:
		return '7', true
	case 72:
		return '8', true
	case 73:
		return '9', true
	case 74:
		return '-', true
	case 75:
		return '4', true
	case 76:
		return '5', true
	case 77:
		return '6', true
	case 78:
		return '+', true
	case 79:
		return '1', true
	case 80:
		return '2', true
	case 81:
		return '3', true
	case 82:
		return '0', true
	case 83:
		return '.', true
	case 98:
		return '/', true
	case 55:
		return '*', true
	}
	return 0, false
}

// usRows holds the US layout by key code, unshifted then shifted, from
// KEY_1 (2) to KEY_SLASH (53); spaces are keys with no character.
const (
	usPlain   = "1234567890-=  qwertyuiop[]  asdfghjkl;'` \\zxcvbnm,./"
	usShifted = "!@#$%^&*()_+  QWERTYUIOP{}  ASDFGHJKL:\"~ |ZXCVBNM<>?"
	frPlain   = "&\u00e9\"'(-\u00e8_\u00e7\u00e0)=  azertyuiop^$  qsdfghjklm\u00f9\u00b2 *wxcvbn,;:!"
	frShifted = "1234567890\u00b0+  AZERTYUIOP\u00a8\u00a3  QSDFGHJKLM%~ \u00b5WXCVBN?./\u00a7"
)

func rowMap(plain, shifted string) Keymap {
	p, s := []rune(plain), []rune(shifted)
	return func(code uint16, shift bool) byte {
		if c, ok := keypad(code); ok {
			return c
		}
		if code == 57 {
			return ' '
		}
		i := int(code) - 2
		if i < 0 || i >= len(p) {
			return 0
		}
		r := p[i]
		if shift {
			r = s[i]
		}
		if r == ' ' || r > '~' { // not a key, or not ASCII: no barcode character
			return 0
		}
		return byte(r)
	}
}

// KeymapUS is the US keyboard, the factory setting of keyboard-wedge
// scanners and the one to configure them for: key codes are read below
// the desktop's layout, so a French or German desktop does not matter.
func KeymapUS() Keymap { return rowMap(usPlain, usShifted) }

// KeymapFR is the French AZERTY keyboard, for scanners configured to
// emulate it (they send Shift+& for 1).
func KeymapFR() Keymap { return rowMap(frPlain, frShifted) }
