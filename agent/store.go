package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// store is the agent's own SQLite database next to the journal: the
// idempotency record (key → request hash, op, reply) of every POST but a
// checkout's, which the journal keeps in its op's own transaction, and the
// cached rules. It never holds a card in the clear.
type store struct {
	db *sql.DB // synchronous=FULL: what a reply depends on
	// lazy commits records whose loss a retry repairs (a pending request
	// becoming done): synchronous=NORMAL, durable against a crash of the
	// process, not against a power cut.
	lazy *sql.DB

	// keys holds every request key in the table, loaded at open and kept
	// by put (the agent is the database's only writer), so that looking up
	// a fresh key, what nearly every request does, costs no query.
	mu   sync.Mutex
	keys map[string]struct{}
}

const storeSchema = `
CREATE TABLE IF NOT EXISTS requests (
	key          TEXT PRIMARY KEY,
	route        TEXT NOT NULL,
	request_hash BLOB NOT NULL,
	state        INTEGER NOT NULL,   -- 1 pending (op not yet known durable), 2 done
	status       INTEGER NOT NULL,
	reply        BLOB NOT NULL,
	op_id        BLOB UNIQUE,
	op           BLOB,               -- loyalty.Op, canonical encoding
	reverses     BLOB UNIQUE,        -- a void's target: one void per op
	created_at   INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS rules (
	version   INTEGER PRIMARY KEY,
	body      TEXT NOT NULL,
	stored_at INTEGER NOT NULL
) STRICT;
`

// storeDSN is the agent database's data source name, at the given
// synchronous level (FULL for what a reply or a print depends on).
func storeDSN(path, sync string) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(" + sync + ")", "busy_timeout(5000)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

func openStore(ctx context.Context, path string) (*store, error) {
	dsn := func(sync string) string { return storeDSN(path, sync) }
	db, err := sql.Open("sqlite", dsn("FULL"))
	if err != nil {
		return nil, fmt.Errorf("open agent database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, storeSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open agent database %s: %w (check the state directory is writable)", path, err)
	}
	lazy, err := sql.Open("sqlite", dsn("NORMAL"))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open agent database %s: %w", path, err)
	}
	lazy.SetMaxOpenConns(1)
	s := &store{db: db, lazy: lazy, keys: map[string]struct{}{}}
	if err := s.loadKeys(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open agent database %s: %w", path, err)
	}
	return s, nil
}

func (s *store) loadKeys(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, "SELECT key FROM requests")
	if err != nil {
		return fmt.Errorf("read request keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return fmt.Errorf("read request keys: %w", err)
		}
		s.keys[k] = struct{}{}
	}
	return rows.Err()
}

func (s *store) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[key]
	return ok
}

func (s *store) Close() error {
	return errors.Join(s.lazy.Close(), s.db.Close())
}

// request states
const (
	statePending = 1
	stateDone    = 2
)

// record is one idempotency record.
type record struct {
	Key         string
	Route       string
	RequestHash []byte
	State       int
	Status      int
	Reply       []byte
	Op          *loyalty.Op // nil for a request that made no op
}

func requestHash(route string, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)
}

// get returns the record for key, or nil.
func (s *store) get(ctx context.Context, key string) (*record, error) {
	if !s.has(key) {
		return nil, nil
	}
	r := &record{Key: key}
	var opBytes []byte
	err := s.db.QueryRowContext(ctx, `SELECT route, request_hash, state, status, reply, op FROM requests WHERE key = ?`, key).
		Scan(&r.Route, &r.RequestHash, &r.State, &r.Status, &r.Reply, &opBytes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read idempotency record: %w", err)
	}
	if opBytes != nil {
		r.Op = new(loyalty.Op)
		if err := r.Op.UnmarshalBinary(opBytes); err != nil {
			return nil, fmt.Errorf("read idempotency record: stored op: %w", err)
		}
	}
	return r, nil
}

// same reports whether r answers the request with this hash.
func (r *record) same(hash []byte) bool { return bytes.Equal(r.RequestHash, hash) }

// errAlreadyReversed is returned by put when the op a void targets already has a void.
var errAlreadyReversed = errors.New("op already reversed")

// put stores r durably. A pending op record is written before the op is
// appended to the journal, so a retry after a crash finds the same op.
func (s *store) put(ctx context.Context, r *record, now time.Time) error {
	var opID, opBytes, reverses []byte
	if r.Op != nil {
		opID = r.Op.ID[:]
		opBytes = r.Op.AppendCanonical(nil)
		if r.Op.Kind == loyalty.OpReverse {
			reverses = r.Op.Reverses[:]
		}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO requests (key, route, request_hash, state, status, reply, op_id, op, reverses, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Key, r.Route, r.RequestHash, r.State, r.Status, r.Reply, opID, opBytes, reverses, now.UnixNano())
	if err != nil && reverses != nil && isUnique(err, "requests.reverses") {
		return errAlreadyReversed
	}
	if err != nil {
		return fmt.Errorf("store idempotency record: %w", err)
	}
	s.mu.Lock()
	s.keys[r.Key] = struct{}{}
	s.mu.Unlock()
	return nil
}

// done marks a pending record done once its op is durable in the journal.
func (s *store) done(ctx context.Context, key string) error {
	if _, err := s.lazy.ExecContext(ctx, `UPDATE requests SET state = ? WHERE key = ?`, stateDone, key); err != nil {
		return fmt.Errorf("mark request done: %w", err)
	}
	return nil
}

// refuse turns a pending record into a stored refusal: its op was refused
// by the journal and never recorded.
func (s *store) refuse(ctx context.Context, key string, reply []byte) error {
	_, err := s.db.ExecContext(ctx, `UPDATE requests SET state = ?, status = 0, reply = ?, op_id = NULL, op = NULL, reverses = NULL
		WHERE key = ? AND state = ?`, stateDone, reply, key, statePending)
	if err != nil {
		return fmt.Errorf("store refusal: %w", err)
	}
	return nil
}

// op returns an op this terminal made through the API, by ID.
func (s *store) op(ctx context.Context, id loyalty.OpID) (*loyalty.Op, bool, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT op FROM requests WHERE op_id = ?`, id[:]).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read op %s: %w", id, err)
	}
	op := new(loyalty.Op)
	if err := op.UnmarshalBinary(b); err != nil {
		return nil, false, fmt.Errorf("read op %s: %w", id, err)
	}
	return op, true, nil
}

// reversed reports whether a void of id is recorded.
func (s *store) reversed(ctx context.Context, id loyalty.OpID) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM requests WHERE reverses = ?`, id[:]).Scan(&n); err != nil {
		return false, fmt.Errorf("look up voids of %s: %w", id, err)
	}
	return n > 0, nil
}

// saveRules stores a rules version.
func (s *store) saveRules(ctx context.Context, body []byte, version uint32, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO rules (version, body, stored_at) VALUES (?, ?, ?)
		ON CONFLICT (version) DO UPDATE SET body = excluded.body, stored_at = excluded.stored_at`, version, string(body), now.UnixNano())
	if err != nil {
		return fmt.Errorf("store rules version %d: %w", version, err)
	}
	return nil
}

// latestRules returns the highest stored rules version's body, or nil.
func (s *store) latestRules(ctx context.Context) ([]byte, error) {
	var body string
	err := s.db.QueryRowContext(ctx, `SELECT body FROM rules ORDER BY version DESC LIMIT 1`).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cached rules: %w", err)
	}
	return []byte(body), nil
}

func isUnique(err error, column string) bool {
	return err != nil && bytes.Contains([]byte(err.Error()), []byte("UNIQUE constraint failed: "+column))
}
