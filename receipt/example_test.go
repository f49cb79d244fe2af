package receipt_test

import (
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/receipt"
	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// The agent builds the block once per checkout, after the journal append,
// and renders it for the printer, or as text for a POS app that prints on
// its own.
func ExampleBuild() {
	now := time.Date(2026, 11, 28, 14, 5, 0, 0, time.UTC)
	card, _ := loyalty.ParseCardToken("nfc:04A1B2C3D4E5F6")
	earn := loyalty.Op{ID: loyalty.OpID{1}, Kind: loyalty.OpEarn, Terminal: "T03", WallTime: now,
		Card: card.Hash(loyalty.CardKey("program key")), Points: 52}
	layout, _ := receipt.DefaultLayout("Club Verde", "en")
	block, err := receipt.Build(receipt.Input{
		Ops:     []loyalty.Op{earn},
		Reasons: []loyalty.Reason{{Code: "base", Label: "Base 1 pt / 1.00", Points: 42}, {Code: "bonus", Label: "Coffee bonus", Points: 10}},
		Card:    card,
		Member:  &loyalty.Snapshot{Balance: 1052, Tier: "Silver", NextTier: "Gold", ToNextTier: 948, AsOf: now.Add(-17 * time.Minute)},
		Offline: true,
		Layout:  layout,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(block.Text(receipt.Width58mm))
	p, _ := block.ESCPOS(receipt.PrintOptions{Width: receipt.Width58mm, CodePage: escpos.CP858})
	doc, _ := escpos.Decode(p)
	fmt.Println(len(doc.Lines), "lines printed")
	// Output:
	// --------------------------------
	//       C l u b   V e r d e
	// Card                    ••••E5F6
	// Points earned
	// Base 1 pt / 1.00              42
	// Coffee bonus                  10
	// Total earned                  52
	// Balance                1,052 pts
	// Tier                      Silver
	// 948 points to Gold
	// Balance as of 13:48, updates
	// when back online
	// --------------------------------
	// 13 lines printed
}
