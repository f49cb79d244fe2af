-- requests maps a client's idempotency key to the op its request made. The
-- row is written in the op's own append transaction, so one commit makes
-- both durable: a retry after any crash finds the op by its key. meta is
-- the caller's (the agent keeps the request's hash and its reply there);
-- the journal never reads it, and it must never hold a card in the clear.
CREATE TABLE requests (
	key   TEXT PRIMARY KEY,
	op_id BLOB NOT NULL UNIQUE REFERENCES ops (id),
	meta  BLOB NOT NULL
) STRICT;
