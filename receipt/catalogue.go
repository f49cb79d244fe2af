package receipt

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Message keys: every string the block prints comes from one of these,
// through a Catalogue. Placeholders are in braces: {points}, {tier}.
const (
	MsgCard         = "card"          // pair label before the masked card
	MsgMember       = "member"        // pair label before the redacted member ID, when no card is at hand
	MsgEarnedTitle  = "earned.title"  // heading of the earned lines
	MsgEarned       = "earned"        // pair label of an earn without reasons
	MsgEarnedTotal  = "earned.total"  // pair label of the earned total, under several reasons
	MsgRedeemed     = "redeemed"      // {reward}
	MsgReversed     = "reversed"      // a void or return took points back
	MsgAdjusted     = "adjusted"      // {reason}
	MsgEnrolled     = "enrolled"      // {program}
	MsgEnrolledAnon = "enrolled.anon" // the welcome line when no program name is set
	MsgBalance      = "balance"       // pair label of the new balance
	MsgPoints       = "points"        // {points}: an amount of points in a pair's value column
	MsgDebt         = "debt"          // pair label: owed from offline redemptions
	MsgTier         = "tier"          // pair label before the tier name
	MsgToNextTier   = "tier.next"     // {points} {tier}
	MsgExpiring     = "expiring"      // {points} {date}
	MsgOffline      = "offline"       // {when}: the balance is a cached one
	MsgOfflineNoBal = "offline.nobal" // offline, and no balance known for the card
	MsgClaim        = "claim"         // {points}
	MsgClaimUntil   = "claim.until"   // {date}
	MsgReasonBase   = "reason.base"   // overrides the label of a "base" reason; {label} {ref} {mult}
	MsgReasonTier   = "reason.tier"   // overrides the label of a "tier" reason
	MsgReasonCap    = "reason.cap"    // overrides the label of a "cap" reason
)

// Catalogue is the strings of one language, with a program's overrides.
type Catalogue struct {
	lang      string
	overrides map[string]string
}

// Languages lists the languages with a built-in catalogue.
func Languages() []string { return []string{"en", "es"} }

// NewCatalogue returns the catalogue of lang ("en" or "es"), with
// overrides (message key to text) taking precedence. Unknown keys in
// overrides are an error, so a typo in a layout does not go unnoticed.
func NewCatalogue(lang string, overrides map[string]string) (Catalogue, error) {
	if !slices.Contains(Languages(), lang) {
		return Catalogue{}, fmt.Errorf("receipt: no message catalogue for language %q; use one of %s", lang, strings.Join(Languages(), ", "))
	}
	for k := range overrides {
		if builtin(lang, k) == "" && builtin("en", k) == "" && !strings.HasPrefix(k, "reason.") {
			return Catalogue{}, fmt.Errorf("receipt: unknown message key %q in the %s overrides", k, lang)
		}
	}
	return Catalogue{lang: lang, overrides: overrides}, nil
}

// Lang returns the catalogue's language.
func (c Catalogue) Lang() string {
	if c.lang == "" {
		return "en"
	}
	return c.lang
}

// Has reports whether the catalogue has a text for key.
func (c Catalogue) Has(key string) bool {
	if _, ok := c.overrides[key]; ok {
		return true
	}
	return builtin(c.Lang(), key) != ""
}

// Text returns the message for key with its placeholders filled from args,
// given as name, value pairs: Text(MsgClaim, "points", "94").
func (c Catalogue) Text(key string, args ...string) string {
	s, ok := c.overrides[key]
	if !ok {
		s = builtin(c.Lang(), key)
	}
	if s == "" {
		s = builtin("en", key)
	}
	if !strings.Contains(s, "{") {
		return s
	}
	for i := 0; i+1 < len(args); i += 2 {
		s = strings.ReplaceAll(s, "{"+args[i]+"}", args[i+1])
	}
	return s
}

// Points formats n with the language's thousands separator: 1,250 or 1.250.
func (c Catalogue) Points(n int64) string {
	sep := byte(',')
	if c.Lang() == "es" {
		sep = '.'
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if len(s) > 3 {
		var b strings.Builder
		head := len(s) % 3
		if head > 0 {
			b.WriteString(s[:head])
		}
		for i := head; i < len(s); i += 3 {
			if b.Len() > 0 {
				b.WriteByte(sep)
			}
			b.WriteString(s[i : i+3])
		}
		s = b.String()
	}
	if neg {
		s = "-" + s
	}
	return s
}

var monthsEN = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// Date formats a day: "31 Dec 2026" in English, "31/12/2026" in Spanish.
func (c Catalogue) Date(t time.Time) string {
	if c.Lang() == "es" {
		return t.Format("02/01/2006")
	}
	return fmt.Sprintf("%d %s %d", t.Day(), monthsEN[t.Month()-1], t.Year())
}

// Clock formats a time of day, 24-hour: "14:05".
func (c Catalogue) Clock(t time.Time) string { return t.Format("15:04") }

func builtin(lang, key string) string {
	if lang == "es" {
		return spanish(key)
	}
	return english(key)
}

func english(key string) string {
	switch key {
	case MsgCard:
		return "Card"
	case MsgMember:
		return "Member"
	case MsgEarnedTitle:
		return "Points earned"
	case MsgEarned:
		return "Points earned"
	case MsgEarnedTotal:
		return "Total earned"
	case MsgRedeemed:
		return "Redeemed: {reward}"
	case MsgReversed:
		return "Points reversed"
	case MsgAdjusted:
		return "Adjustment: {reason}"
	case MsgEnrolled:
		return "Welcome to {program}!"
	case MsgEnrolledAnon:
		return "Welcome!"
	case MsgBalance:
		return "Balance"
	case MsgPoints:
		return "{points} pts"
	case MsgDebt:
		return "Owed from offline redemptions"
	case MsgTier:
		return "Tier"
	case MsgToNextTier:
		return "{points} points to {tier}"
	case MsgExpiring:
		return "{points} points expire on {date}"
	case MsgOffline:
		return "Balance as of {when}, updates when back online"
	case MsgOfflineNoBal:
		return "Offline: your balance will update when back online"
	case MsgClaim:
		return "Scan to claim {points} points"
	case MsgClaimUntil:
		return "Claim by {date}"
	}
	return "" // reason labels stay as the rules wrote them
}

func spanish(key string) string {
	switch key {
	case MsgCard:
		return "Tarjeta"
	case MsgMember:
		return "Socio"
	case MsgEarnedTitle:
		return "Puntos ganados"
	case MsgEarned:
		return "Puntos ganados"
	case MsgEarnedTotal:
		return "Total ganado"
	case MsgRedeemed:
		return "Canjeado: {reward}"
	case MsgReversed:
		return "Puntos anulados"
	case MsgAdjusted:
		return "Ajuste: {reason}"
	case MsgEnrolled:
		return "¡Bienvenido a {program}!"
	case MsgEnrolledAnon:
		return "¡Bienvenido!"
	case MsgBalance:
		return "Saldo"
	case MsgPoints:
		return "{points} pts"
	case MsgDebt:
		return "Pendiente por canjes sin conexión"
	case MsgTier:
		return "Nivel"
	case MsgToNextTier:
		return "Faltan {points} puntos para {tier}"
	case MsgExpiring:
		return "{points} puntos caducan el {date}"
	case MsgOffline:
		return "Saldo a las {when}; se actualizará al recuperar la conexión"
	case MsgOfflineNoBal:
		return "Sin conexión: su saldo se actualizará al recuperarla"
	case MsgClaim:
		return "Escanee para sumar {points} puntos"
	case MsgClaimUntil:
		return "Válido hasta el {date}"
	case MsgReasonBase:
		return "Puntos base"
	case MsgReasonTier:
		return "Nivel {ref} {mult}"
	case MsgReasonCap:
		return "Tope por compra"
	}
	return ""
}
