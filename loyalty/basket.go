package loyalty

import (
	"errors"
	"fmt"
)

// Line is one line of a basket. Amount is the line total (quantity times
// unit price, after line discounts) in the basket's currency; a return or a
// discount line is negative.
type Line struct {
	SKU      string `json:"sku"`
	Category string `json:"category,omitempty"`
	Quantity int64  `json:"quantity"`
	Amount   int64  `json:"amount"`
}

// Basket is what the customer buys in one checkout.
type Basket struct {
	Currency Currency `json:"currency"`
	Lines    []Line   `json:"lines"`
}

// Limits on a basket, so a garbled request cannot make the journal or the
// wire format unbounded.
const (
	MaxBasketLines = 1000
	MaxFieldLen    = 64
)

// ErrInvalidBasket reports a basket that cannot be scored.
var ErrInvalidBasket = errors.New("loyalty: invalid basket")

// Total returns the sum of the line amounts.
func (b Basket) Total() Money {
	var t int64
	for _, l := range b.Lines {
		t += l.Amount
	}
	return Money{Amount: t, Currency: b.Currency}
}

// Validate checks the currency, the line count and each line.
func (b Basket) Validate() error {
	if err := b.Currency.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidBasket, err)
	}
	if len(b.Lines) == 0 {
		return fmt.Errorf("%w: no lines", ErrInvalidBasket)
	}
	if len(b.Lines) > MaxBasketLines {
		return fmt.Errorf("%w: %d lines, at most %d", ErrInvalidBasket, len(b.Lines), MaxBasketLines)
	}
	const maxAmount = 1 << 40 // about 11 billion currency units: far beyond any till
	var total int64
	for i, l := range b.Lines {
		switch {
		case l.SKU == "" || len(l.SKU) > MaxFieldLen:
			return fmt.Errorf("%w: line %d: SKU must be 1 to %d bytes", ErrInvalidBasket, i+1, MaxFieldLen)
		case len(l.Category) > MaxFieldLen:
			return fmt.Errorf("%w: line %d: category longer than %d bytes", ErrInvalidBasket, i+1, MaxFieldLen)
		case l.Quantity == 0 || l.Quantity > 1e6 || l.Quantity < -1e6:
			return fmt.Errorf("%w: line %d: quantity %d out of range", ErrInvalidBasket, i+1, l.Quantity)
		case l.Amount > maxAmount || l.Amount < -maxAmount:
			return fmt.Errorf("%w: line %d: amount %d out of range", ErrInvalidBasket, i+1, l.Amount)
		}
		total += l.Amount
	}
	if total > maxAmount || total < -maxAmount {
		return fmt.Errorf("%w: total %d out of range", ErrInvalidBasket, total)
	}
	return nil
}
