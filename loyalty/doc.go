// Package loyalty is the domain of tillpoint: points, money, baskets, card
// tokens, member snapshots, journal operations and the versioned earn rules.
//
// It is shared by the store terminal and the cloud ledger, so both compute
// the same points for the same basket under the same rules version
// (invariant 5 of DESIGN.md).
//
// The package is pure. It must never do I/O, read the clock on its own
// (callers pass the time), import anything but the standard library, use
// floating point on the points path, or put a card identifier in the clear
// into a String, a log value or JSON (invariant 7).
package loyalty
