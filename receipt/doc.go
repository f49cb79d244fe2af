// Package receipt lays out the loyalty block of a receipt: who the member
// is (card masked), the points earned with their reasons, the points
// redeemed and for what, the new balance, the tier and the distance to the
// next, points about to expire, an honest notice when the terminal is
// offline, and, for a purchase made without a card, a QR code with a signed
// claim token ("Scan to claim 94 points").
//
// Build turns the operations of a checkout into a Block, in the language of
// a message catalogue (English and Spanish to start) and in the order of a
// Layout, one per program, which is data (JSON). A Block then renders to a
// roll of 32, 42 or 48 columns as text (for POS apps that print on their
// own, and for logs), as ESC/POS bytes (package receipt/escpos) or as a PNG
// (for the cashier screen and the docs).
//
// Use:
//
//	layout, err := receipt.DefaultLayout("Club Verde", "es") // or ParseLayout(json)
//	block, err := receipt.Build(receipt.Input{Ops: ops, Reasons: reasons, Card: card,
//		Member: &snapshotAfter, Rules: rules, Offline: offline, Location: store,
//		TerminalKey: key, Layout: layout})
//	bytes, err := block.ESCPOS(receipt.PrintOptions{Width: 42, CodePage: escpos.CP858})
//	text := block.Text(42) // for a POS app, or a log line
//	png, err := block.PNG(42)
//
// A purchase without a card (an earn op whose Card is zero) prints "Scan to
// claim N points" and a QR code holding loyalty.SignClaim's token; the
// cloud checks it with loyalty.VerifyClaim and credits it once, before it
// expires (loyalty.ClaimWindow, 30 days).
//
// The package must never do I/O, read the clock (callers pass the time),
// or put a card identifier in the clear into a block: cards print masked
// (loyalty.CardToken's String), members by a redacted ID. A claim token is
// a bearer credential for points: Block.Text shows it as "[QR]", never in
// full, so text previews can go to logs.
package receipt
