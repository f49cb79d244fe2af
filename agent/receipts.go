package agent

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/receipt"
	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// ReceiptRenderer renders the loyalty block with package receipt: text at
// the printer's width, and ESC/POS in its code page.
type ReceiptRenderer struct {
	Width    int
	CodePage escpos.CodePage
	Layout   *receipt.Layout
	// TerminalKey signs the claim code of a purchase made without a card;
	// without it such receipts carry no claim code.
	TerminalKey ed25519.PrivateKey
	Location    *time.Location
}

var _ Receipts = (*ReceiptRenderer)(nil)

// NewReceiptRenderer returns a renderer for the configured printer (42
// columns, CP858 without one) and receipt language.
func NewReceiptRenderer(cfg *config.Config, key ed25519.PrivateKey) (*ReceiptRenderer, error) {
	r := &ReceiptRenderer{Width: config.DefaultPrinterWidth, CodePage: escpos.CP858, TerminalKey: key}
	if p := cfg.Printer; p != nil {
		cp, err := escpos.ParseCodePage(p.CodePage)
		if err != nil {
			return nil, fmt.Errorf("receipt: printer.code_page: %w", err)
		}
		r.Width, r.CodePage = p.Width, cp
	}
	layout, err := receipt.DefaultLayout("", cfg.Receipt.Language)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	r.Layout = layout
	return r, nil
}

var _ ReceiptPreviews = (*ReceiptRenderer)(nil)

// Render builds the block and renders it as text and ESC/POS.
func (r *ReceiptRenderer) Render(in ReceiptInput) (Receipt, error) {
	b, err := r.block(in)
	if err != nil {
		return Receipt{}, err
	}
	esc, err := b.ESCPOS(receipt.PrintOptions{Width: r.Width, CodePage: r.CodePage, Init: true, Cut: true})
	if err != nil {
		return Receipt{}, fmt.Errorf("receipt: %w", err)
	}
	return Receipt{Text: b.Text(r.Width), ESCPOS: esc}, nil
}

// PNG renders the block as the printer would print it, at its width.
func (r *ReceiptRenderer) PNG(in ReceiptInput) ([]byte, error) {
	b, err := r.block(in)
	if err != nil {
		return nil, err
	}
	png, err := b.PNG(r.Width)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	return png, nil
}

func (r *ReceiptRenderer) block(in ReceiptInput) (receipt.Block, error) {
	rin := receipt.Input{
		Ops: []loyalty.Op{in.Op}, Reasons: in.Reasons, Card: in.Card, Rules: in.Rules,
		Offline: in.Offline, Now: in.Op.WallTime, Location: r.Location, Layout: r.Layout,
	}
	if in.Known {
		m := in.Member
		rin.Member = &m
	}
	if in.Op.Card.IsZero() && in.Op.Kind == loyalty.OpEarn {
		if r.TerminalKey == nil {
			return receipt.Block{}, fmt.Errorf("receipt: a purchase without a card needs the terminal key for its claim code")
		}
		rin.TerminalKey = r.TerminalKey
	}
	b, err := receipt.Build(rin)
	if err != nil {
		return receipt.Block{}, fmt.Errorf("receipt: %w", err)
	}
	return b, nil
}

// ReceiptPreviewPath is the local API's path of a recent receipt's picture.
func ReceiptPreviewPath(op loyalty.OpID) string {
	return "/v1/receipts/" + op.String() + "/preview.png"
}

// ReceiptPNG renders one of the last receipts (those the screen lists) as
// a PNG picture of the loyalty block, the card masked as on paper. It is
// rendered when asked, so the checkout path never pays for it.
func (a *Agent) ReceiptPNG(op loyalty.OpID) ([]byte, error) {
	prev, ok := a.rcpt.(ReceiptPreviews)
	if !ok {
		return nil, Errorf(CodeNotFound, "This till renders no receipt pictures.")
	}
	var in *ReceiptInput
	a.mu.Lock()
	for _, r := range a.receipts {
		if r.Op == op {
			in = r.in
		}
	}
	a.mu.Unlock()
	if in == nil {
		return nil, Errorf(CodeNotFound, "Receipt %s is not among the last %d receipts of this till.", op, recentReceipts)
	}
	png, err := prev.PNG(*in)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "The receipt picture could not be rendered.", Err: err}
	}
	return png, nil
}
