package receipt

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// Input is what a checkout tells the receipt.
type Input struct {
	// Ops are the checkout's operations as journaled, in order: usually
	// one earn, perhaps a redeem before it; or a reverse, an adjust, an enroll.
	Ops []loyalty.Op
	// Reasons are what Rules.Earn returned for the earn op.
	Reasons []loyalty.Reason
	// Card is the card presented, printed masked; zero when the terminal
	// no longer holds it (the member then prints by redacted ID) or when
	// there was no card.
	Card loyalty.CardToken
	// Member is the member's snapshot after the ops (the local view when
	// offline); nil for a purchase without a card, or when the terminal
	// knows nothing of the card yet.
	Member *loyalty.Snapshot
	// Rules, when given, name the rewards redeemed.
	Rules *loyalty.Rules
	// Offline says the terminal could not reach the cloud: the balance is
	// the snapshot's as of AsOf (the snapshot's own AsOf when zero) plus
	// the terminal's own ops. An op with Offline set implies it.
	Offline bool
	AsOf    time.Time
	// Now is the time of the checkout, for "expiring soon"; the last op's
	// wall time when zero. Location is the store's time zone for the dates
	// and times printed; UTC when nil.
	Now      time.Time
	Location *time.Location
	// TerminalKey signs the claim token of a purchase made without a card.
	TerminalKey ed25519.PrivateKey
	// Layout is the program's template; DefaultLayout("", "en") when nil.
	Layout *Layout
}

// Kind is what an Element is.
type Kind uint8

const (
	KindText  Kind = iota + 1 // a line of text, wrapped to the width
	KindPair                  // a label and a right-aligned amount
	KindRule                  // a line of dashes
	KindBlank                 // an empty line
	KindQR                    // a QR code
)

// Element is one part of a block, in words already (the catalogue's
// language); rendering fits it to a width.
type Element struct {
	Kind Kind
	// Text is the text of a KindText element, the label of a KindPair.
	Text string
	// Value is the right-aligned amount of a KindPair.
	Value string
	// Data is the payload of a KindQR.
	Data  string
	Bold  bool
	Large bool // double width and height
	Tall  bool // double height
	Align escpos.Align
}

// Block is the loyalty block of one receipt, ready to render at any width.
type Block struct {
	Elements []Element
	// Claim is the claim token printed in the QR code, empty when the
	// purchase had a card. It is a bearer credential: do not log it.
	Claim string
	// Lang is the catalogue's language.
	Lang string
}

// Build errors.
var (
	ErrNoOps      = errors.New("receipt: no operations to print")
	ErrNoClaimKey = errors.New("receipt: a purchase without a card needs the terminal key to sign its claim code")
)

// Build lays out the loyalty block of a checkout. It fails only on input
// it cannot print honestly: no ops, an invalid layout, or a cardless earn
// without a key to sign its claim.
func Build(in Input) (Block, error) {
	if len(in.Ops) == 0 {
		return Block{}, ErrNoOps
	}
	l := in.Layout
	if l == nil {
		var err error
		if l, err = DefaultLayout("", "en"); err != nil {
			return Block{}, err
		}
	} else if l.cat.lang == "" {
		c := *l
		if err := c.Validate(); err != nil {
			return Block{}, err
		}
		l = &c
	}
	b := builder{in: in, l: l, cat: l.cat, loc: in.Location}
	if b.loc == nil {
		b.loc = time.UTC
	}
	if b.in.Now.IsZero() {
		b.in.Now = in.Ops[len(in.Ops)-1].WallTime
	}
	for _, op := range in.Ops {
		b.offline = b.offline || op.Offline
		if op.Kind == loyalty.OpEarn && op.Card.IsZero() && op.Points > 0 && b.claimOp == nil {
			b.claimOp = &op
		}
	}
	b.offline = b.offline || in.Offline
	if b.claimOp != nil {
		if len(in.TerminalKey) == 0 {
			return Block{}, ErrNoClaimKey
		}
		token, err := loyalty.SignClaim(in.TerminalKey, loyalty.NewClaim(b.claimOp))
		if err != nil {
			return Block{}, fmt.Errorf("receipt: claim code for receipt %q: %w", b.claimOp.Receipt, err)
		}
		b.block.Claim = token
	}
	for _, s := range l.Sections {
		b.section(s)
	}
	b.block.Lang = b.cat.Lang()
	return b.block, nil
}

type builder struct {
	in      Input
	l       *Layout
	cat     Catalogue
	loc     *time.Location
	offline bool
	claimOp *loyalty.Op
	block   Block
	s       Section
}

func (b *builder) add(e Element) {
	e.Text, e.Value = clean(e.Text), clean(e.Value)
	e.Bold = e.Bold || b.s.Bold
	e.Large = b.s.Large
	e.Tall = b.s.Tall
	if e.Kind != KindPair {
		e.Align, _ = parseAlign(b.s.Align)
	}
	b.block.Elements = append(b.block.Elements, e)
}

func (b *builder) text(s string)         { b.add(Element{Kind: KindText, Text: s}) }
func (b *builder) pair(label, v string)  { b.add(Element{Kind: KindPair, Text: label, Value: v}) }
func (b *builder) points(p int64) string { return b.cat.Text(MsgPoints, "points", b.cat.Points(p)) }

func (b *builder) section(s Section) {
	b.s = s
	switch s.Kind {
	case SectionTitle, SectionText:
		if t := strings.TrimSpace(strings.ReplaceAll(s.Text, "{program}", b.program())); t != "" {
			b.text(t)
		}
	case SectionRule:
		b.add(Element{Kind: KindRule})
	case SectionBlank:
		b.add(Element{Kind: KindBlank})
	case SectionMember:
		b.member()
	case SectionEarned:
		b.earned()
	case SectionRedeemed:
		b.redeemed()
	case SectionBalance:
		if m := b.in.Member; m != nil {
			b.pair(b.cat.Text(MsgBalance), b.points(int64(m.Balance)))
			if m.Debt > 0 {
				b.s.Tall, b.s.Large, b.s.Bold = false, false, false
				b.pair(b.cat.Text(MsgDebt), b.points(int64(m.Debt)))
			}
		}
	case SectionTier:
		if m := b.in.Member; m != nil {
			if m.Tier != "" {
				b.pair(b.cat.Text(MsgTier), m.Tier)
			}
			if m.NextTier != "" && m.ToNextTier > 0 {
				b.text(b.cat.Text(MsgToNextTier, "points", b.cat.Points(int64(m.ToNextTier)), "tier", m.NextTier))
			}
		}
	case SectionExpiring:
		b.expiring()
	case SectionOffline:
		b.offlineNotice()
	case SectionClaim:
		if b.claimOp != nil {
			b.text(b.cat.Text(MsgClaim, "points", b.cat.Points(int64(b.claimOp.Points))))
			b.add(Element{Kind: KindQR, Data: b.l.ClaimURL + b.block.Claim})
			b.s.Bold = false
			claim := loyalty.NewClaim(b.claimOp)
			b.text(b.cat.Text(MsgClaimUntil, "date", b.cat.Date(claim.Expires.In(b.loc))))
		}
	}
}

func (b *builder) program() string {
	if b.l.Program != "" {
		return b.l.Program
	}
	if b.in.Rules != nil {
		return b.in.Rules.Program
	}
	return ""
}

func (b *builder) member() {
	switch {
	case !b.in.Card.IsZero():
		_, masked, _ := strings.Cut(b.in.Card.String(), ":")
		b.pair(b.cat.Text(MsgCard), masked)
	case b.in.Member != nil && b.in.Member.Member != "":
		b.pair(b.cat.Text(MsgMember), loyalty.Redact(string(b.in.Member.Member)))
	}
}

func (b *builder) earned() {
	for _, op := range b.in.Ops {
		switch op.Kind {
		case loyalty.OpEarn:
			if op.Card.IsZero() {
				continue // the claim section tells the points of a cardless purchase
			}
			b.earnLines(op)
		case loyalty.OpReverse:
			b.pair(b.cat.Text(MsgReversed), b.cat.Points(int64(op.Points)))
		case loyalty.OpAdjust:
			b.pair(b.cat.Text(MsgAdjusted, "reason", op.Reason), signed(b.cat, op.Points))
		case loyalty.OpEnroll:
			if p := b.program(); p != "" {
				b.text(b.cat.Text(MsgEnrolled, "program", p))
			} else {
				// "Welcome to !" is what the named message gives without a name.
				b.text(b.cat.Text(MsgEnrolledAnon))
			}
		}
	}
}

func (b *builder) earnLines(op loyalty.Op) {
	if len(b.in.Reasons) == 0 {
		b.pair(b.cat.Text(MsgEarned), b.cat.Points(int64(op.Points)))
		return
	}
	bold := b.s.Bold
	b.s.Bold = false
	b.text(b.cat.Text(MsgEarnedTitle))
	for _, r := range b.in.Reasons {
		b.pair(b.reasonLabel(r), b.cat.Points(int64(r.Points)))
	}
	if len(b.in.Reasons) > 1 {
		b.s.Bold = bold
		b.add(Element{Kind: KindPair, Text: b.cat.Text(MsgEarnedTotal), Value: b.cat.Points(int64(op.Points)), Bold: true})
	}
	b.s.Bold = bold
}

// reasonLabel is the rules' label, unless the catalogue translates the
// reason's code (Spanish "Puntos base" for "Base 1 pt / 1.00").
func (b *builder) reasonLabel(r loyalty.Reason) string {
	key := "reason." + r.Code
	if !b.cat.Has(key) {
		return r.Label
	}
	var mult string
	if i := strings.LastIndexByte(r.Label, ' '); i >= 0 && strings.HasPrefix(r.Label[i+1:], "x") {
		mult = r.Label[i+1:]
	}
	return strings.TrimSpace(b.cat.Text(key, "label", r.Label, "ref", r.Ref, "mult", mult))
}

func (b *builder) redeemed() {
	for _, op := range b.in.Ops {
		if op.Kind != loyalty.OpRedeem {
			continue
		}
		name := op.Reward
		if b.in.Rules != nil {
			if w, ok := b.in.Rules.Reward(op.Reward); ok && w.Name != "" {
				name = w.Name
			}
		}
		b.pair(b.cat.Text(MsgRedeemed, "reward", name), b.cat.Points(int64(op.Points)))
	}
}

func (b *builder) expiring() {
	m := b.in.Member
	if m == nil {
		return
	}
	days := b.l.ExpiringDays
	if days == 0 {
		days = 60
	}
	horizon := b.in.Now.AddDate(0, 0, days)
	soon := make([]loyalty.ExpiringPoints, 0, len(m.Expiring))
	for _, e := range m.Expiring {
		if e.Points > 0 && e.At.After(b.in.Now) && !e.At.After(horizon) {
			soon = append(soon, e)
		}
	}
	slices.SortFunc(soon, func(x, y loyalty.ExpiringPoints) int { return x.At.Compare(y.At) })
	for _, e := range soon[:min(len(soon), 3)] {
		b.text(b.cat.Text(MsgExpiring, "points", b.cat.Points(int64(e.Points)), "date", b.cat.Date(e.At.In(b.loc))))
	}
}

func (b *builder) offlineNotice() {
	if !b.offline {
		return
	}
	if b.in.Member == nil {
		if b.claimOp == nil {
			b.text(b.cat.Text(MsgOfflineNoBal))
		}
		return
	}
	asOf := b.in.AsOf
	if asOf.IsZero() {
		asOf = b.in.Member.AsOf
	}
	asOf = asOf.In(b.loc)
	when := b.cat.Clock(asOf)
	if now := b.in.Now.In(b.loc); asOf.YearDay() != now.YearDay() || asOf.Year() != now.Year() {
		when = b.cat.Date(asOf) + " " + when
	}
	b.text(b.cat.Text(MsgOffline, "when", when))
}

// clean turns control characters (a newline in a campaign name, say) into
// spaces, so every element stays one logical line that wraps.
func clean(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

func signed(c Catalogue, p loyalty.Points) string {
	if p > 0 {
		return "+" + c.Points(int64(p))
	}
	return c.Points(int64(p))
}

func parseAlign(s string) (escpos.Align, error) {
	switch s {
	case "", "left":
		return escpos.Left, nil
	case "center":
		return escpos.Center, nil
	case "right":
		return escpos.Right, nil
	}
	return 0, fmt.Errorf("alignment %q: use left, center or right", s)
}
