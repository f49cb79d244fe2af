package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// migrations are applied in order, each once, in its own transaction. Never
// edit one that has shipped: append a new one. BLOB becomes BYTEA on
// PostgreSQL; WITHOUT_ROWID becomes SQLite's WITHOUT ROWID (tables of small
// rows keyed by their primary key, stored once instead of twice) and
// nothing on PostgreSQL. Times are Unix microseconds.
var migrations = []string{
	// 1: registry, rules, ingest bookkeeping and the ledger.
	`
CREATE TABLE stores (
	id         TEXT PRIMARY KEY,
	created_at BIGINT NOT NULL
);
CREATE TABLE terminals (
	id          TEXT PRIMARY KEY,
	store       TEXT NOT NULL,
	public_key  BLOB NOT NULL,
	key_id      TEXT NOT NULL,
	status      TEXT NOT NULL,
	enrolled_at BIGINT NOT NULL,
	revoked_at  BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE enroll_codes (
	code_hash  BLOB PRIMARY KEY,
	store      TEXT NOT NULL,
	terminal   TEXT NOT NULL,
	expires_at BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	used_at    BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE rules (
	version      BIGINT PRIMARY KEY,
	hash         TEXT NOT NULL,
	body         TEXT NOT NULL,
	published_at BIGINT NOT NULL
);
CREATE TABLE epochs (
	terminal  TEXT NOT NULL,
	epoch     BIGINT NOT NULL,
	watermark BIGINT NOT NULL,
	last_hash BLOB NOT NULL,
	PRIMARY KEY (terminal, epoch)
) WITHOUT_ROWID;
CREATE TABLE batches (
	terminal    TEXT NOT NULL,
	epoch       BIGINT NOT NULL,
	first_seq   BIGINT NOT NULL,
	last_seq    BIGINT NOT NULL,
	hash        BLOB NOT NULL,
	prev_hash   BLOB NOT NULL,
	received_at BIGINT NOT NULL,
	PRIMARY KEY (terminal, epoch, first_seq)
);
CREATE TABLE ops (
	terminal      TEXT NOT NULL,
	epoch         BIGINT NOT NULL,
	seq           BIGINT NOT NULL,
	id            BLOB NOT NULL,
	status        SMALLINT NOT NULL,
	reason        TEXT NOT NULL,
	kind          SMALLINT NOT NULL,
	store         TEXT NOT NULL,
	card          BLOB NOT NULL,
	owner         TEXT NOT NULL,
	points        BIGINT NOT NULL,
	posted        BIGINT NOT NULL,
	rules_version BIGINT NOT NULL,
	reverses      BLOB NOT NULL,
	flags         BIGINT NOT NULL,
	wall_time     BIGINT NOT NULL,
	hlc           BIGINT NOT NULL,
	received_at   BIGINT NOT NULL,
	digest        BLOB NOT NULL,
	body          BLOB NOT NULL,
	PRIMARY KEY (terminal, epoch, seq)
);
CREATE UNIQUE INDEX ops_applied_id ON ops (id) WHERE status = 1;
CREATE TABLE reversals (
	target BLOB PRIMARY KEY,
	by_op  BLOB NOT NULL
) WITHOUT_ROWID;
CREATE TABLE owners (
	id             TEXT PRIMARY KEY,
	qualifying     BIGINT NOT NULL,
	last_overspend BIGINT NOT NULL,
	created_at     BIGINT NOT NULL
) WITHOUT_ROWID;
CREATE TABLE cards (
	hash       BLOB PRIMARY KEY,
	member     TEXT NOT NULL,
	created_at BIGINT NOT NULL
) WITHOUT_ROWID;
CREATE TABLE card_stores (
	store TEXT NOT NULL,
	card  BLOB NOT NULL,
	PRIMARY KEY (store, card)
) WITHOUT_ROWID;
CREATE TABLE accounts (
	id      TEXT PRIMARY KEY,
	balance BIGINT NOT NULL
) WITHOUT_ROWID;
CREATE TABLE postings (
	txid    BLOB NOT NULL,
	part    SMALLINT NOT NULL,
	account TEXT NOT NULL,
	amount  BIGINT NOT NULL,
	kind    SMALLINT NOT NULL,
	at      BIGINT NOT NULL,
	PRIMARY KEY (txid, part, account)
) WITHOUT_ROWID;
CREATE TABLE lots (
	id            BLOB PRIMARY KEY,
	owner         TEXT NOT NULL,
	amount        BIGINT NOT NULL,
	remaining     BIGINT NOT NULL,
	earned_at     BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL,
	rules_version BIGINT NOT NULL,
	store         TEXT NOT NULL
) WITHOUT_ROWID;
CREATE INDEX lots_owner ON lots (owner);
CREATE INDEX lots_open ON lots (owner, expires_at, remaining) WHERE remaining <> 0;
CREATE INDEX lots_open_expiry ON lots (expires_at) WHERE remaining <> 0;
CREATE TABLE lot_uses (
	txid   BLOB NOT NULL,
	part   SMALLINT NOT NULL,
	lot    BLOB NOT NULL,
	amount BIGINT NOT NULL,
	PRIMARY KEY (txid, part, lot)
) WITHOUT_ROWID;
CREATE TABLE overspends (
	op_id     BLOB PRIMARY KEY,
	owner     TEXT NOT NULL,
	store     TEXT NOT NULL,
	terminal  TEXT NOT NULL,
	shortfall BIGINT NOT NULL,
	offline   SMALLINT NOT NULL,
	at        BIGINT NOT NULL
) WITHOUT_ROWID;
`,
	// 2: claims of card-less purchases.
	`
CREATE TABLE claims (
	op_id  BLOB PRIMARY KEY,
	card   BLOB NOT NULL,
	points BIGINT NOT NULL,
	at     BIGINT NOT NULL
) WITHOUT_ROWID;
`,
	// 3: store rosters: each terminal's gossip address, a version per
	// store's roster, and each store's gossip keyring (retired_at 0: the
	// primary).
	`
ALTER TABLE terminals ADD COLUMN advertise TEXT NOT NULL DEFAULT '';
ALTER TABLE stores ADD COLUMN roster_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX terminals_store ON terminals (store);
CREATE TABLE gossip_keys (
	store      TEXT NOT NULL,
	gkey       BLOB NOT NULL,
	added_at   BIGINT NOT NULL,
	retired_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (store, gkey)
) WITHOUT_ROWID;
`,
	// 4: one index of lots by owner instead of two. It holds the open lots
	// (what debits, checks and snapshots read) and every lot of a held card,
	// which a link moves to the member whatever its remaining points; a
	// member's closed lots are never looked up by owner. Card owners ("c:")
	// sort before member owners ("m:"): a comparison, not LIKE, because a
	// function in an index's condition makes SQLite journal every multi-row
	// write to the table. Every new lot used to cost two inserts at random
	// places by owner, half the pages a batch wrote.
	`
DROP INDEX lots_owner;
DROP INDEX lots_open;
CREATE INDEX lots_by_owner ON lots (owner, expires_at, remaining) WHERE remaining <> 0 OR owner < 'm:';
`,
	// 5 and 6: an owner's two balances (available points, and minus what
	// it owes) move from rows of accounts onto its owners row, so that a
	// batch writes one row per owner instead of three: the accounts by
	// owner were a third of the pages a batch wrote. Postings keep naming
	// the accounts ("avail|" and "debt|" and the owner); accounts keeps the
	// program's. Owners that had balances but no row (none are made so)
	// get a row. The columns come in a migration of their own, before the
	// rows are moved, as CockroachDB wants schema changes apart from the
	// writes that use them.
	`
ALTER TABLE owners ADD COLUMN avail BIGINT NOT NULL DEFAULT 0;
ALTER TABLE owners ADD COLUMN debt BIGINT NOT NULL DEFAULT 0;
`,
	`
INSERT INTO owners (id, qualifying, last_overspend, created_at)
	SELECT DISTINCT t.owner, 0, 0, 0 FROM (
		SELECT CASE WHEN id LIKE 'avail|%' THEN substr(id, 7) ELSE substr(id, 6) END AS owner
		FROM accounts WHERE id LIKE 'avail|%' OR id LIKE 'debt|%'
	) t WHERE NOT EXISTS (SELECT 1 FROM owners o WHERE o.id = t.owner);
UPDATE owners SET
	avail = COALESCE((SELECT balance FROM accounts WHERE accounts.id = 'avail|' || owners.id), 0),
	debt = COALESCE((SELECT balance FROM accounts WHERE accounts.id = 'debt|' || owners.id), 0);
DELETE FROM accounts WHERE id LIKE 'avail|%' OR id LIKE 'debt|%';
`,
	// 7: the index of open lots by expiry takes a condition that only
	// Expire names, remaining > 0 (no lot's remaining is negative: Apply
	// refuses and Check reports one), so that it no longer matches a
	// batch's reads of open lots by owner (remaining <> 0). PostgreSQL
	// served those with a scan of every open lot by expiry, filtered by
	// owner, instead of searching lots_by_owner: a read that grows with
	// the ledger, not the batch. For 500 owners of 2,500 both took 1 to 3
	// ms; for 1,000 of 52,500 members it read all 172,500 open lots (18 to
	// 44 ms against 3 to 5). See docs/benchmarks.md.
	`
DROP INDEX lots_open_expiry;
CREATE INDEX lots_expiring ON lots (expires_at) WHERE remaining > 0;
`,
	// 8 to 10: lots name their owner by number, not by its ID. Each owner
	// gets a number (owners.no): held cards negative, members positive,
	// so that "owner_no < 0" selects the lots of held cards as "owner <
	// 'm:'" did. The owner's ID (66 bytes for a held card) was most of
	// every lots_by_owner entry and of every lot: a batch dirtied about
	// 750 pages of that index alone at 10,000 cards. Existing owners are
	// numbered in ID order; new ones from a hash of their ID (ownerNumber).
	// Columns, the writes that fill them, and the indexes that use them
	// come in migrations of their own, as CockroachDB wants.
	`
ALTER TABLE owners ADD COLUMN no BIGINT NOT NULL DEFAULT 0;
ALTER TABLE lots ADD COLUMN owner_no BIGINT NOT NULL DEFAULT 0;
`,
	`
UPDATE owners SET no = r.n FROM (
	SELECT id, CASE WHEN id < 'm:' THEN -1 ELSE 1 END * row_number() OVER (ORDER BY id) AS n FROM owners
) r WHERE owners.id = r.id;
UPDATE lots SET owner_no = (SELECT no FROM owners WHERE owners.id = lots.owner);
`,
	`
CREATE UNIQUE INDEX owners_no ON owners (no);
DROP INDEX lots_by_owner;
CREATE INDEX lots_by_owner_no ON lots (owner_no, expires_at, remaining) WHERE remaining <> 0 OR owner_no < 0;
ALTER TABLE lots DROP COLUMN owner;
`,
	// 11: leases, so that of several clouds over one ledger one at a
	// time runs point expiry (see takeLease).
	`
CREATE TABLE leases (
	name    TEXT PRIMARY KEY,
	holder  TEXT NOT NULL,
	expires BIGINT NOT NULL
) WITHOUT_ROWID;
`,
	// 12: the table PostgreSQL ledger transactions lock so that a retry
	// runs alone (see inTx). No row is ever written to it.
	`
CREATE TABLE ledger_writers (
	id BIGINT PRIMARY KEY
);
`,
	// 13: expiry postings by time, so that a batch reads how far point
	// expiry has run (the latest time by which a run lapsed what was due)
	// from the index alone (see lapsedOf). Only expiry runs write it.
	`
CREATE INDEX postings_expired_at ON postings (at) WHERE kind = 7;
`,
	// 14: refused ops by ID, beside ops_applied_id, so that an op refused
	// once and sent again (a journal restored into a new epoch sends its
	// ops again) is refused again, not applied (see loadSeenOps).
	// Refusals are few, so the index is small and few writes touch it.
	`
CREATE INDEX ops_rejected_id ON ops (id) WHERE status = 3;
`,
	// 15: cards by member, so that a snapshot counts a member's cards
	// (the offline allowance is split between them, see cardCounts).
	// Held cards (no member yet) stay out of it.
	`
CREATE INDEX cards_member ON cards (member) WHERE member <> '';
`,
}

// migrate applies the migrations up to upTo that the ledger lacks. A
// ledger that has them all needs no right to change the schema, so that
// on PostgreSQL the cloud may run as a role that only reads and writes
// rows, once the ledger's owner has migrated it (PostgreSQL checks the
// right to create a table even for CREATE TABLE IF NOT EXISTS of one that
// exists).
func (s *Store) migrate(ctx context.Context, upTo int) error {
	var have int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&have); err != nil {
		if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("migrate ledger: create schema_migrations: %w", err)
		}
	}
	if have == upTo {
		return nil // versions are applied in order, each once
	}
	applied := 0
	for i, m := range migrations[:upTo] {
		version := int64(i + 1)
		err := s.inTx(ctx, func(tx *dbtx) error {
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			applied++
			if s.dialect == Postgres {
				m = strings.ReplaceAll(strings.ReplaceAll(m, "BLOB", "BYTEA"), " WITHOUT_ROWID", "")
			} else {
				m = strings.ReplaceAll(m, "WITHOUT_ROWID", "WITHOUT ROWID")
			}
			// One round trip: both drivers run a script of statements without arguments.
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), version, time.Now().UnixMicro())
			return err
		})
		if err != nil {
			if mayNotChangeSchema(err) {
				return fmt.Errorf("migrate ledger to version %d: %w; the cloud's database user may not change the ledger's schema: run the cloud once as the ledger's owner, which applies the migration, then as this user", version, err)
			}
			return fmt.Errorf("migrate ledger to version %d: %w", version, err)
		}
	}
	// A migration that rewrites a table leaves PostgreSQL's planner without
	// statistics for its new columns until autovacuum gets to it: in that
	// window it read the lots of a batch's owners by scanning every lot.
	if s.dialect == Postgres && applied > 0 {
		if _, err := s.db.ExecContext(ctx, `ANALYZE lots, owners`); err != nil {
			return fmt.Errorf("migrate ledger: analyze the rewritten tables: %w", err)
		}
	}
	return nil
}

// mayNotChangeSchema reports PostgreSQL's insufficient_privilege.
func mayNotChangeSchema(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}
