-- The journal of one terminal. Times are Unix nanoseconds (UTC); card
-- columns hold loyalty.CardHash (keyed hashes), never a card number.

-- meta holds single values: journal_id, terminal, store, created_at,
-- token, prev_token (continuity tokens, see doc.go) and the acknowledgement
-- watermark acked_epoch, acked_seq, acked_pos.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value ANY NOT NULL
) STRICT;

CREATE TABLE epochs (
	epoch      INTEGER PRIMARY KEY CHECK (epoch >= 1),
	started_at INTEGER NOT NULL,
	reason     TEXT NOT NULL
) STRICT;

-- ops is append-only: rows are never updated or deleted. pos is the global
-- insertion order; (epoch, seq) the order the cloud sees. body is the op's
-- canonical encoding and link = SHA-256(previous link || body); the other
-- columns repeat fields of body for queries and are checked by Verify.
CREATE TABLE ops (
	pos       INTEGER PRIMARY KEY,
	epoch     INTEGER NOT NULL REFERENCES epochs (epoch),
	seq       INTEGER NOT NULL CHECK (seq >= 1),
	id        BLOB NOT NULL UNIQUE,
	kind      INTEGER NOT NULL,
	card      BLOB NOT NULL,
	points    INTEGER NOT NULL,
	offline   INTEGER NOT NULL,
	wall_time INTEGER NOT NULL,
	body      BLOB NOT NULL,
	link      BLOB NOT NULL,
	UNIQUE (epoch, seq)
) STRICT;

CREATE INDEX ops_card ON ops (card, pos);

-- snapshots caches the cloud's view of each member, keyed by card hash;
-- body is the loyalty.Snapshot as JSON.
CREATE TABLE snapshots (
	card  BLOB PRIMARY KEY,
	as_of INTEGER NOT NULL,
	body  TEXT NOT NULL
) STRICT;

-- sealed is the uplink's outbox: a batch of ops sealed (signed) once and
-- resent with identical bytes until acknowledged.
CREATE TABLE sealed (
	epoch     INTEGER NOT NULL,
	first_seq INTEGER NOT NULL,
	last_seq  INTEGER NOT NULL,
	payload   BLOB NOT NULL,
	sealed_at INTEGER NOT NULL,
	PRIMARY KEY (epoch, first_seq),
	CHECK (first_seq >= 1 AND last_seq >= first_seq)
) STRICT;

-- peer_redeems are redeems other terminals of the store made offline, as
-- their peers told us; points is the amount spent (positive).
CREATE TABLE peer_redeems (
	id          BLOB PRIMARY KEY,
	card        BLOB NOT NULL,
	points      INTEGER NOT NULL CHECK (points > 0),
	terminal    TEXT NOT NULL,
	epoch       INTEGER NOT NULL,
	seq         INTEGER NOT NULL,
	wall_time   INTEGER NOT NULL,
	received_at INTEGER NOT NULL
) STRICT;

CREATE INDEX peer_redeems_card ON peer_redeems (card, wall_time);
