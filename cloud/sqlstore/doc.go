// Package sqlstore is the cloud ledger's storage: one implementation of
// cloud.Ledger over database/sql with two dialects, SQLite (modernc.org/sqlite,
// the embedded default) and PostgreSQL (github.com/jackc/pgx/v5 through its
// database/sql driver). Open takes "sqlite:PATH" (or a bare path) or a
// "postgres://" URL and migrates the schema.
//
// Apply reads once what a batch touches (op IDs already applied, cards and
// where they were seen, each owner's row and balances, open lots when a
// debit needs them) and keeps it in memory for the batch, computes every
// posting, checks that each transaction sums to zero, and writes everything
// with multi-row statements. An owner's two balances ("avail" and "debt")
// are columns of its owners row, moved by the batch's postings in the same
// write as the row; the accounts table holds the program's accounts. It
// then checks that the lots of every touched owner, summed in SQL, equal
// its available balance as the database holds it after the writes. Any failed check rolls the
// transaction back and returns cloud.ErrInvariant: the ledger halts rather
// than corrupts. The ack's snapshots come from the same state, with the
// expiring points read after the writes. Check replays the whole ledger
// (postings into balances, lot uses into lots) and reports every mismatch.
//
// Costs are pages: a batch touches owners at random places of every table
// keyed by owner, so the lots have a single index by owner, which names
// each owner by its number (owners.no, 8 bytes, given once: number.go)
// rather than its ID (66 bytes for a held card), and the WAL is
// checkpointed in the background (checkpoint.go) every quarter second
// after writes, on a connection of its own, so that no batch pays for
// copying the others' pages into the database file.
//
// SQLite: WAL, synchronous=FULL, one writer connection (BEGIN IMMEDIATE) and
// a pool of readers; statements come from templates in fixed sizes and are
// prepared once (stmt.go); writes resolve conflicts by ROLLBACK, so that
// multi-row writes keep no statement journal. PostgreSQL: REPEATABLE READ
// transactions in which any two that could interfere write a common row
// (see inTx; storetest races a link against an earn on it), retried on
// serialization failures (40001), deadlocks (40P01) and unique violations
// (23505); a retry runs alone, under a lock on the table ledger_writers
// that first attempts hold in a mode they share, so that no batch fails
// twice (the lock is the transaction's, so it holds behind a pooler that
// pools by transaction); lists travel as array parameters (unnest, = ANY)
// and a batch's writes go to the server as one statement of data-modifying
// CTEs, because under load round trips cost more than queries. The schema
// keeps to what CockroachDB also runs: no sequences, triggers or stored
// procedures; times are Unix microseconds
// in BIGINT; upserts are INSERT ... ON CONFLICT; partial indexes only. On a
// server without LOCK TABLE (CockroachDB) the ledger runs without the lock
// and says so. A transaction whose connection breaks before it commits
// runs again on another (lost.go); one whose connection breaks as it
// commits may have committed: Apply asks again, which a batch applied
// answers as its replay, and anything else returns cloud.ErrUnavailable,
// as does a write to a SQLite ledger whose write lock another process held
// for longer than the 10 s busy timeout.
//
// BackupTo copies a SQLite ledger as of one commit while it serves
// (backup.go); a PostgreSQL ledger is backed up with PostgreSQL's tools.
//
// The registry keeps each store's roster version and gossip keyring
// (roster.go): the keys are the store's secrets, handed out only sealed by
// cloud/server, so the database deserves the protection of the cloud's
// signing key.
//
// It must never log or store a card identifier in the clear (cards arrive as
// keyed hashes), never log a gossip key, never rewrite an applied op, and
// never commit a batch whose postings do not balance.
package sqlstore
