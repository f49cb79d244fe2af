package sqlstore

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// CreateEnrollCode implements cloud.Ledger.
func (s *Store) CreateEnrollCode(ctx context.Context, c cloud.EnrollCode) error {
	switch {
	case c.Code == "" || len(c.Code) > 256:
		return fmt.Errorf("%w: an enrollment code is 1 to 256 bytes", cloud.ErrInvalidInput)
	case c.Store == "" || len(c.Store) > loyalty.MaxFieldLen || c.Terminal == "" || len(c.Terminal) > loyalty.MaxFieldLen:
		return fmt.Errorf("%w: store and terminal IDs are 1 to %d bytes", cloud.ErrInvalidInput, loyalty.MaxFieldLen)
	case c.Expires.IsZero():
		return fmt.Errorf("%w: an enrollment code needs an expiry", cloud.ErrInvalidInput)
	}
	if c.Created.IsZero() {
		c.Created = time.Now()
	}
	return s.inTx(ctx, func(tx *dbtx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO stores (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`), c.Store, micros(c.Created)); err != nil {
			return fmt.Errorf("create store %s: %w", c.Store, err)
		}
		if err := s.checkRoom(ctx, tx, c.Store, c.Terminal); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO enroll_codes (code_hash, store, terminal, expires_at, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (code_hash) DO NOTHING`),
			cloud.HashEnrollCode(c.Code), c.Store, c.Terminal, micros(c.Expires), micros(c.Created))
		if err != nil {
			return fmt.Errorf("store enrollment code for terminal %s: %w", c.Terminal, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store enrollment code for terminal %s: %w", c.Terminal, err)
		} else if n != 1 {
			return fmt.Errorf("%w: this enrollment code exists already; generate another", cloud.ErrInvalidInput)
		}
		return nil
	})
}

// checkRoom refuses terminal, unless store holds it already, when store
// has as many terminals as its roster carries (revoked ones included):
// when the operator makes its code, and again as it enrolls.
func (s *Store) checkRoom(ctx context.Context, tx *dbtx, store, terminal string) error {
	var n int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM terminals WHERE store = ? AND id <> ?`), store, terminal).Scan(&n); err != nil {
		return fmt.Errorf("count the terminals of store %s: %w", store, err)
	}
	if n >= cloud.MaxStoreTerminals {
		return fmt.Errorf("%w: store %s has %d terminals (revoked ones included), the most its roster carries; enroll this till under the ID of one it replaces", cloud.ErrInvalidInput, store, n)
	}
	return nil
}

// Enroll implements cloud.Ledger.
func (s *Store) Enroll(ctx context.Context, code string, key cloud.TerminalKey, now time.Time) (cloud.Terminal, error) {
	if err := loyalty.CheckSigningKey(key.PublicKey); err != nil {
		return cloud.Terminal{}, fmt.Errorf("%w: enrollment: %w", cloud.ErrInvalidInput, err)
	}
	if key.KeyID == "" || len(key.KeyID) > 128 {
		return cloud.Terminal{}, fmt.Errorf("%w: enrollment needs a key ID of 1 to 128 bytes", cloud.ErrInvalidInput)
	}
	if len(key.Addr) > maxAddrLen {
		return cloud.Terminal{}, fmt.Errorf("%w: a gossip address is at most %d bytes", cloud.ErrInvalidInput, maxAddrLen)
	}
	var t cloud.Terminal
	err := s.inTx(ctx, func(tx *dbtx) error {
		h := cloud.HashEnrollCode(code)
		res, err := tx.ExecContext(ctx, s.q(`UPDATE enroll_codes SET used_at = ? WHERE code_hash = ? AND used_at = 0 AND expires_at > ?`), micros(now), h, micros(now))
		if err != nil {
			return fmt.Errorf("consume enrollment code: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("consume enrollment code: %w", err)
		} else if n != 1 {
			return cloud.ErrEnrollCode
		}
		t = cloud.Terminal{PublicKey: key.PublicKey, KeyID: key.KeyID, Status: cloud.TerminalActive, EnrolledAt: now.UTC().Truncate(time.Microsecond), Addr: key.Addr}
		if err := tx.QueryRowContext(ctx, s.q(`SELECT store, terminal FROM enroll_codes WHERE code_hash = ?`), h).Scan(&t.Store, &t.ID); err != nil {
			return fmt.Errorf("read enrollment code: %w", err)
		}
		var oldStore string
		switch err := tx.QueryRowContext(ctx, s.q(`SELECT store FROM terminals WHERE id = ?`), t.ID).Scan(&oldStore); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read terminal %s: %w", t.ID, err)
		}
		if err := s.checkRoom(ctx, tx, t.Store, t.ID); err != nil {
			return err
		}
		var held int64
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(epoch), 0) FROM epochs WHERE terminal = ?`), t.ID).Scan(&held); err != nil {
			return fmt.Errorf("read epochs of terminal %s: %w", t.ID, err)
		}
		t.FirstEpoch = uint32(held) + 1
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO terminals (id, store, public_key, key_id, status, enrolled_at, revoked_at, advertise) VALUES (?, ?, ?, ?, ?, ?, 0, ?)
			ON CONFLICT (id) DO UPDATE SET store = excluded.store, public_key = excluded.public_key, key_id = excluded.key_id,
			status = excluded.status, enrolled_at = excluded.enrolled_at, revoked_at = 0, advertise = excluded.advertise`),
			t.ID, t.Store, []byte(t.PublicKey), t.KeyID, string(t.Status), micros(now), t.Addr)
		if err != nil {
			return fmt.Errorf("register terminal %s: %w", t.ID, err)
		}
		if err := s.ensureGossipKey(ctx, tx, t.Store, now); err != nil {
			return err
		}
		if oldStore != "" && oldStore != t.Store {
			if err := s.bumpRoster(ctx, tx, oldStore); err != nil {
				return err
			}
		}
		return s.bumpRoster(ctx, tx, t.Store)
	})
	if err != nil {
		return cloud.Terminal{}, err
	}
	return t, nil
}

const terminalColumns = `id, store, public_key, key_id, status, enrolled_at, revoked_at, advertise`

func scanTerminal(sc interface{ Scan(...any) error }) (cloud.Terminal, error) {
	var t cloud.Terminal
	var pub []byte
	var status string
	var enrolled, revoked int64
	if err := sc.Scan(&t.ID, &t.Store, &pub, &t.KeyID, &status, &enrolled, &revoked, &t.Addr); err != nil {
		return t, err
	}
	t.PublicKey = ed25519.PublicKey(pub)
	t.Status = cloud.TerminalStatus(status)
	t.EnrolledAt, t.RevokedAt = fromMicros(enrolled), fromMicros(revoked)
	return t, nil
}

// Terminal implements cloud.Ledger.
func (s *Store) Terminal(ctx context.Context, id string) (cloud.Terminal, error) {
	t, err := scanTerminal(s.rdb.QueryRowContext(ctx, s.q(`SELECT `+terminalColumns+` FROM terminals WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("terminal %s: %w", id, cloud.ErrNotFound)
	} else if err != nil {
		return t, fmt.Errorf("read terminal %s: %w", id, err)
	}
	return t, nil
}

// Terminals implements cloud.Ledger.
func (s *Store) Terminals(ctx context.Context) ([]cloud.Terminal, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+terminalColumns+` FROM terminals ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list terminals: %w", err)
	}
	defer rows.Close()
	var ts []cloud.Terminal
	for rows.Next() {
		t, err := scanTerminal(rows)
		if err != nil {
			return nil, fmt.Errorf("list terminals: %w", err)
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// RevokeTerminal implements cloud.Ledger.
func (s *Store) RevokeTerminal(ctx context.Context, id string, now time.Time) error {
	return s.inTx(ctx, func(tx *dbtx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE terminals SET status = ?, revoked_at = ? WHERE id = ?`), string(cloud.TerminalRevoked), micros(now), id)
		if err != nil {
			return fmt.Errorf("revoke terminal %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("revoke terminal %s: %w", id, cloud.ErrNotFound)
		}
		// A code made for the terminal before it was revoked (one that
		// leaked with the till, say) must not bring it back: it expires.
		// A replacement enrolls with a code made after the revoke.
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE enroll_codes SET expires_at = ? WHERE terminal = ? AND used_at = 0 AND expires_at > ?`), micros(now), id, micros(now)); err != nil {
			return fmt.Errorf("revoke terminal %s: expire its enrollment codes: %w", id, err)
		}
		// The store's other terminals learn it from the roster's new version.
		var store string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT store FROM terminals WHERE id = ?`), id).Scan(&store); err != nil {
			return fmt.Errorf("revoke terminal %s: %w", id, err)
		}
		return s.bumpRoster(ctx, tx, store)
	})
}

// PublishRules implements cloud.Ledger.
func (s *Store) PublishRules(ctx context.Context, r loyalty.Rules, now time.Time) error {
	if err := r.Validate(); err != nil {
		return err
	}
	hash, err := r.Hash()
	if err != nil {
		return err
	}
	body, err := r.Canonical()
	if err != nil {
		return fmt.Errorf("encode rules %d: %w", r.Version, err)
	}
	return s.inTx(ctx, func(tx *dbtx) error {
		var have string
		err := tx.QueryRowContext(ctx, s.q(`SELECT hash FROM rules WHERE version = ?`), int64(r.Version)).Scan(&have)
		switch {
		case err == nil && have == hash:
			return nil
		case err == nil:
			return fmt.Errorf("rules version %d (hash %.12s, published %.12s): %w", r.Version, hash, have, cloud.ErrRulesConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("read rules %d: %w", r.Version, err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO rules (version, hash, body, published_at) VALUES (?, ?, ?, ?)`), int64(r.Version), hash, string(body), micros(now)); err != nil {
			return fmt.Errorf("publish rules %d: %w", r.Version, err)
		}
		return nil
	})
}

// Rules implements cloud.Ledger.
func (s *Store) Rules(ctx context.Context, version uint32) (loyalty.Rules, error) {
	r, err := s.loadRules(ctx, s.rdb, version)
	if err != nil {
		return loyalty.Rules{}, err
	}
	return *r, nil
}

// CurrentRules implements cloud.Ledger.
func (s *Store) CurrentRules(ctx context.Context) (loyalty.Rules, error) {
	v, err := s.currentRulesVersion(ctx, s.rdb)
	if err != nil {
		return loyalty.Rules{}, err
	}
	if v == 0 {
		return loyalty.Rules{}, fmt.Errorf("current rules: none published yet: %w", cloud.ErrNotFound)
	}
	return s.Rules(ctx, v)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) currentRulesVersion(ctx context.Context, q querier) (uint32, error) {
	var v int64
	if err := q.QueryRowContext(ctx, qRulesVersion).Scan(&v); err != nil {
		return 0, fmt.Errorf("read current rules version: %w", err)
	}
	return uint32(v), nil
}

// loadRules returns a published version through the cache; published
// versions never change, so the cache never goes stale.
func (s *Store) loadRules(ctx context.Context, q querier, version uint32) (*loyalty.Rules, error) {
	s.mu.Lock()
	r, ok := s.rules[version]
	s.mu.Unlock()
	if ok {
		return r, nil
	}
	var body string
	err := q.QueryRowContext(ctx, s.q(`SELECT body FROM rules WHERE version = ?`), int64(version)).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("rules version %d: %w", version, cloud.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("read rules %d: %w", version, err)
	}
	r = new(loyalty.Rules)
	if err := json.Unmarshal([]byte(body), r); err != nil {
		return nil, fmt.Errorf("decode rules %d: %w", version, err)
	}
	s.mu.Lock()
	s.rules[version] = r
	s.mu.Unlock()
	return r, nil
}
