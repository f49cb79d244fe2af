package receipt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Section kinds: the parts of a block a Layout orders. A section with
// nothing to say for a checkout (tier for a member without tiers, claim for
// a purchase with a card) prints nothing.
const (
	SectionTitle    = "title"    // Text, e.g. "{program}"
	SectionText     = "text"     // Text, a fixed line (a slogan, a web address)
	SectionRule     = "rule"     // a line of dashes
	SectionBlank    = "blank"    // an empty line
	SectionMember   = "member"   // the masked card, or the redacted member ID
	SectionEarned   = "earned"   // the earn reasons line by line, or a reversal or adjustment
	SectionRedeemed = "redeemed" // each redemption and its reward
	SectionBalance  = "balance"  // the new balance, and any offline debt
	SectionTier     = "tier"     // the tier and the points to the next
	SectionExpiring = "expiring" // points expiring within ExpiringDays
	SectionOffline  = "offline"  // the offline notice, when offline
	SectionClaim    = "claim"    // "Scan to claim N points" and the QR code, without a card
)

func sectionKinds() []string {
	return []string{SectionTitle, SectionText, SectionRule, SectionBlank, SectionMember, SectionEarned,
		SectionRedeemed, SectionBalance, SectionTier, SectionExpiring, SectionOffline, SectionClaim}
}

// Section is one part of a layout and how it prints.
type Section struct {
	Kind string `json:"kind"`
	// Text is the line of a title or text section; "{program}" is replaced
	// by the program's name. Other sections take their words from the catalogue.
	Text string `json:"text,omitempty"`
	Bold bool   `json:"bold,omitempty"`
	// Large prints double width and height (half the columns).
	Large bool `json:"large,omitempty"`
	// Tall prints double height, at full width.
	Tall bool `json:"tall,omitempty"`
	// Align is "left" (the default), "center" or "right"; pairs of a label
	// and an amount always span the line.
	Align string `json:"align,omitempty"`
}

// Layout is a program's receipt template: which sections print, in which
// order and style, in which language, with which words. It is data, so a
// program's marketing team can change it without a release.
type Layout struct {
	Program string `json:"program"`
	// Language picks the message catalogue: "en" or "es".
	Language string `json:"language"`
	// Messages overrides catalogue texts, by message key.
	Messages map[string]string `json:"messages,omitempty"`
	Sections []Section         `json:"sections"`
	// ExpiringDays is how far ahead expiring points are shown; 0 means 60.
	ExpiringDays int `json:"expiring_days,omitempty"`
	// ClaimURL, when set, goes before the claim token in the QR code, so a
	// phone camera opens the program's claim page ("HTTPS://CLUB.EXAMPLE/C/").
	// Upper case keeps the code in the compact alphanumeric QR mode.
	ClaimURL string `json:"claim_url,omitempty"`

	cat Catalogue
}

// DefaultLayout returns the built-in layout for a program, in lang.
func DefaultLayout(program, lang string) (*Layout, error) {
	l := &Layout{
		Program:  program,
		Language: lang,
		Sections: []Section{
			{Kind: SectionRule},
			{Kind: SectionTitle, Text: "{program}", Bold: true, Large: true, Align: "center"},
			{Kind: SectionMember},
			{Kind: SectionEarned},
			{Kind: SectionRedeemed},
			{Kind: SectionBalance, Bold: true, Tall: true},
			{Kind: SectionTier},
			{Kind: SectionExpiring},
			{Kind: SectionOffline},
			{Kind: SectionClaim, Bold: true, Align: "center"},
			{Kind: SectionRule},
		},
	}
	return l, l.Validate()
}

// ErrInvalidLayout reports a layout that cannot be used.
var ErrInvalidLayout = errors.New("receipt: invalid layout")

// ParseLayout reads a layout from JSON, rejecting unknown fields, and validates it.
func ParseLayout(data []byte) (*Layout, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var l Layout
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidLayout, err)
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &l, nil
}

// Validate checks the layout and prepares its catalogue; Build calls it
// for a layout that has not been validated.
func (l *Layout) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: program %q: %s", ErrInvalidLayout, l.Program, fmt.Sprintf(format, args...))
	}
	if l.Language == "" {
		l.Language = "en"
	}
	cat, err := NewCatalogue(l.Language, l.Messages)
	if err != nil {
		return bad("%v", err)
	}
	if len(l.Sections) == 0 {
		return bad("no sections")
	}
	if l.ExpiringDays < 0 || l.ExpiringDays > 3660 {
		return bad("expiring_days %d: 0 to 3660", l.ExpiringDays)
	}
	if len(l.ClaimURL) > 64 {
		return bad("claim_url longer than 64 bytes would not fit the QR code")
	}
	for i, s := range l.Sections {
		if !slices.Contains(sectionKinds(), s.Kind) {
			return bad("section %d: unknown kind %q; use one of %s", i+1, s.Kind, strings.Join(sectionKinds(), ", "))
		}
		if _, err := parseAlign(s.Align); err != nil {
			return bad("section %d: %v", i+1, err)
		}
		if (s.Kind == SectionTitle || s.Kind == SectionText) && s.Text == "" {
			return bad("section %d: a %s section needs its text", i+1, s.Kind)
		}
		if s.Large && s.Tall {
			return bad("section %d: large already makes it tall; choose one", i+1)
		}
	}
	l.cat = cat
	return nil
}

// Catalogue returns the layout's message catalogue.
func (l *Layout) Catalogue() Catalogue { return l.cat }
