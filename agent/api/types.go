package api

import (
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Line is one basket line on the wire.
type Line struct {
	SKU      string `json:"sku"`
	Category string `json:"category,omitempty"`
	Quantity int64  `json:"quantity"`
	Amount   int64  `json:"amount"` // minor units, line total
}

// Basket is a basket on the wire.
type Basket struct {
	Currency string `json:"currency"`
	Lines    []Line `json:"lines"`
}

func (b Basket) domain() loyalty.Basket {
	d := loyalty.Basket{Currency: loyalty.Currency(b.Currency), Lines: make([]loyalty.Line, len(b.Lines))}
	for i, l := range b.Lines {
		d.Lines[i] = loyalty.Line{SKU: l.SKU, Category: l.Category, Quantity: l.Quantity, Amount: l.Amount}
	}
	return d
}

// CheckoutBody is POST /v1/checkout.
type CheckoutBody struct {
	Card    string `json:"card,omitempty"` // "kind:value"; empty: the open session's card, or none
	Basket  Basket `json:"basket"`
	Receipt string `json:"receipt,omitempty"`
	Cashier string `json:"cashier,omitempty"`
}

// QuoteBody is POST /v1/quote.
type QuoteBody struct {
	Basket Basket `json:"basket"`
}

// RedeemBody is POST /v1/redeem.
type RedeemBody struct {
	Card    string `json:"card,omitempty"`
	Reward  string `json:"reward"`
	Receipt string `json:"receipt,omitempty"`
	Cashier string `json:"cashier,omitempty"`
}

// VoidBody is POST /v1/void.
type VoidBody struct {
	Op      string `json:"op"`
	Reason  string `json:"reason,omitempty"`
	Receipt string `json:"receipt,omitempty"`
	Cashier string `json:"cashier,omitempty"`
}

// EnrollBody is POST /v1/enroll.
type EnrollBody struct {
	Card    string `json:"card,omitempty"` // empty: the open session's card
	Member  string `json:"member,omitempty"`
	Cashier string `json:"cashier,omitempty"`
}

// SessionBody is POST /v1/session: a card read by the POS itself.
type SessionBody struct {
	Card string `json:"card"`
}

// Reason is one part of an earn.
type Reason struct {
	Code   string `json:"code"`
	Ref    string `json:"ref,omitempty"`
	Label  string `json:"label"`
	Points int64  `json:"points"`
}

// Member is the member as a reply shows it.
type Member struct {
	Card       string `json:"card,omitempty"` // masked
	Known      bool   `json:"known"`
	ID         string `json:"id,omitempty"`
	Balance    int64  `json:"balance"`
	Tier       string `json:"tier,omitempty"`
	NextTier   string `json:"next_tier,omitempty"`
	ToNextTier int64  `json:"to_next_tier,omitempty"`
}

// ReceiptBlock is the loyalty block of a receipt.
type ReceiptBlock struct {
	Text   string `json:"text"`
	ESCPOS []byte `json:"escpos"` // base64 in JSON
}

// OpReply answers every operation.
type OpReply struct {
	OpID     string        `json:"op_id"`
	Kind     string        `json:"kind"`
	Member   Member        `json:"member"`
	Points   int64         `json:"points"`
	Reasons  []Reason      `json:"reasons"`
	Balance  int64         `json:"balance"`
	Tier     string        `json:"tier,omitempty"`
	Offline  bool          `json:"offline"`
	Notice   string        `json:"notice,omitempty"`
	Reward   string        `json:"reward,omitempty"`
	Reverses string        `json:"reverses,omitempty"`
	Rules    uint32        `json:"rules_version"`
	Receipt  *ReceiptBlock `json:"receipt,omitempty"`
	Printed  bool          `json:"printed"`
	Replayed bool          `json:"replayed"`
	At       time.Time     `json:"at"`
}

func reasons(rs []loyalty.Reason) []Reason {
	out := make([]Reason, len(rs))
	for i, r := range rs {
		out[i] = Reason{Code: r.Code, Ref: r.Ref, Label: r.Label, Points: int64(r.Points)}
	}
	return out
}

func opReply(r *agent.Result) OpReply {
	o := OpReply{
		OpID: r.OpID.String(), Kind: r.Kind.String(),
		Member: Member{Card: r.Card, Known: r.Known, ID: string(r.Member), Balance: int64(r.Balance),
			Tier: r.Tier, NextTier: r.NextTier, ToNextTier: int64(r.ToNextTier)},
		Points: int64(r.Points), Reasons: reasons(r.Reasons), Balance: int64(r.Balance), Tier: r.Tier,
		Offline: r.Offline, Notice: r.Notice, Reward: r.Reward, Rules: r.Rules,
		Printed: r.Printed, Replayed: r.Replayed, At: r.At,
	}
	if !r.Reverses.IsZero() {
		o.Reverses = r.Reverses.String()
	}
	if r.Receipt != "" || len(r.ESCPOS) > 0 {
		o.Receipt = &ReceiptBlock{Text: r.Receipt, ESCPOS: r.ESCPOS}
	}
	return o
}

// QuoteReply answers POST /v1/quote.
type QuoteReply struct {
	Points  int64    `json:"points"`
	Reasons []Reason `json:"reasons"`
	Total   int64    `json:"total"`
}
