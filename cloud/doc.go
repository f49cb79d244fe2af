// Package cloud is the domain of tillpoint's central ledger: the Ledger
// interface the cloud server talks to, its input and result types (a
// verified batch, per-op results, the terminal registry, enrollment codes,
// published rules, ledger checks), the offline risk policy that decides a
// card's allowance, and the error codes storage returns.
//
// The ledger is double-entry in integer points. Every op a terminal journals
// is applied exactly once, in the order of its terminal's sequence numbers,
// inside one database transaction per batch. An implementation lives in a
// package of its own (cloud/sqlstore: SQLite and PostgreSQL) and proves
// itself against the shared suite in cloud/storetest.
//
// The accounts (see Account, OwnerAccount and ProgramAccount) are: per owner (a member, or a card no
// member holds yet) "avail" and "debt"; for the program "issued", "redeemed"
// and "adjust" (each sharded so concurrent terminals do not queue on one
// row), "expired", and "shortfall" per store for offline redeems honoured
// beyond a balance. Conservation (invariant 3 of DESIGN.md) is: every
// transaction's postings sum to zero, every account's balance is the sum of
// its postings, every owner's open lots sum to its available balance, and
// the points liability (the sum of "avail") equals minus the sum of every
// other account.
//
// This package must never import the server, the wire format's encoder,
// the agent, devices or offline; it does no I/O of its own, and it never
// holds a card identifier in the clear: cards are loyalty.CardHash values,
// keyed hashes (invariant 7).
package cloud
