// Package screen is the cashier screen: a page embedded in the binary
// (go:embed, no build step) and served at the agent's address. It shows the
// current member (card masked), balance and tier, the points of the current
// basket, device health, an offline banner with the journal's backlog, and
// the last receipts as text and as pictures (PNG, rendered by the agent at
// /v1/receipts/{op}/preview.png), and updates itself from the agent's event
// stream (/v1/events).
//
// It must never receive or show a card number in the clear (the agent only
// sends masked cards), load anything from outside the agent, or need a
// network connection beyond the agent's loopback address.
package screen
