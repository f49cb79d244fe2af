package sqlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
)

// maxAddrLen bounds a terminal's gossip address.
const maxAddrLen = 300

// bumpRoster moves a store's roster version on: its terminals refetch.
func (s *Store) bumpRoster(ctx context.Context, tx *dbtx, store string) error {
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE stores SET roster_version = roster_version + 1 WHERE id = ?`), store); err != nil {
		return fmt.Errorf("bump the roster version of store %s: %w", store, err)
	}
	return nil
}

// ensureGossipKey gives a store its first gossip key when it has none.
// Two first enrollments at once cannot both make one: each also writes the
// store's row (bumpRoster) in its transaction, so PostgreSQL retries the
// later one (see inTx), which then finds the key; SQLite has one writer.
func (s *Store) ensureGossipKey(ctx context.Context, tx *dbtx, store string, now time.Time) error {
	var n int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM gossip_keys WHERE store = ?`), store).Scan(&n); err != nil {
		return fmt.Errorf("read the gossip keyring of store %s: %w", store, err)
	}
	if n > 0 {
		return nil
	}
	key := make([]byte, cloud.GossipKeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("make the gossip key of store %s: %w", store, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO gossip_keys (store, gkey, added_at, retired_at) VALUES (?, ?, ?, 0)`), store, key, micros(now)); err != nil {
		return fmt.Errorf("store the gossip key of store %s: %w", store, err)
	}
	return nil
}

// StoreRoster implements cloud.Ledger.
func (s *Store) StoreRoster(ctx context.Context, store string) (cloud.StoreRoster, error) {
	r := cloud.StoreRoster{Store: store}
	err := s.inTx(ctx, func(tx *dbtx) error {
		r.Terminals, r.GossipKeys = nil, nil
		var version int64
		if err := tx.QueryRowContext(ctx, s.q(`SELECT roster_version FROM stores WHERE id = ?`), store).Scan(&version); err != nil {
			return fmt.Errorf("store %s: %w", store, cloud.ErrNotFound)
		}
		r.Version = uint64(version)
		rows, err := tx.QueryContext(ctx, s.q(`SELECT `+terminalColumns+` FROM terminals WHERE store = ? ORDER BY id`), store)
		if err != nil {
			return fmt.Errorf("list the terminals of store %s: %w", store, err)
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTerminal(rows)
			if err != nil {
				return fmt.Errorf("list the terminals of store %s: %w", store, err)
			}
			r.Terminals = append(r.Terminals, t)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list the terminals of store %s: %w", store, err)
		}
		rows.Close()
		keys, err := tx.QueryContext(ctx, s.q(`SELECT gkey, added_at, retired_at FROM gossip_keys WHERE store = ?
			ORDER BY CASE WHEN retired_at = 0 THEN 0 ELSE 1 END, retired_at DESC, added_at DESC`), store)
		if err != nil {
			return fmt.Errorf("read the gossip keyring of store %s: %w", store, err)
		}
		defer keys.Close()
		for keys.Next() {
			var k cloud.GossipKey
			var added, retired int64
			if err := keys.Scan(&k.Key, &added, &retired); err != nil {
				return fmt.Errorf("read the gossip keyring of store %s: %w", store, err)
			}
			k.AddedAt, k.RetiredAt = fromMicros(added), fromMicros(retired)
			r.GossipKeys = append(r.GossipKeys, k)
		}
		return keys.Err()
	})
	if err != nil {
		return cloud.StoreRoster{}, err
	}
	if len(r.Terminals) == 0 {
		return cloud.StoreRoster{}, fmt.Errorf("store %s has no terminal: %w", store, cloud.ErrNotFound)
	}
	return r, nil
}

// RotateGossipKey implements cloud.Ledger.
func (s *Store) RotateGossipKey(ctx context.Context, store string, key []byte, now time.Time) error {
	if len(key) != cloud.GossipKeySize || bytes.Equal(key, make([]byte, cloud.GossipKeySize)) {
		return fmt.Errorf("%w: a gossip key is %d random bytes", cloud.ErrInvalidInput, cloud.GossipKeySize)
	}
	return s.inTx(ctx, func(tx *dbtx) error {
		var n, same int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN gkey = ? THEN 1 ELSE 0 END), 0) FROM gossip_keys WHERE store = ?`), key, store).Scan(&n, &same); err != nil {
			return fmt.Errorf("read the gossip keyring of store %s: %w", store, err)
		}
		switch {
		case n == 0:
			return fmt.Errorf("store %s has no gossip keyring (no terminal enrolled yet): %w", store, cloud.ErrNotFound)
		case same > 0:
			return fmt.Errorf("%w: store %s had this gossip key before; use a new one", cloud.ErrInvalidInput, store)
		case n >= 8:
			return fmt.Errorf("%w: store %s holds %d gossip keys; finish the last rotation first", cloud.ErrInvalidInput, store, n)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE gossip_keys SET retired_at = ? WHERE store = ? AND retired_at = 0`), micros(now), store); err != nil {
			return fmt.Errorf("retire the primary gossip key of store %s: %w", store, err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO gossip_keys (store, gkey, added_at, retired_at) VALUES (?, ?, ?, 0)`), store, key, micros(now)); err != nil {
			return fmt.Errorf("add the gossip key of store %s: %w", store, err)
		}
		return s.bumpRoster(ctx, tx, store)
	})
}

// RemoveRetiredGossipKeys implements cloud.Ledger.
func (s *Store) RemoveRetiredGossipKeys(ctx context.Context, store string, cutoff time.Time) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *dbtx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM gossip_keys WHERE store = ? AND retired_at <> 0 AND retired_at <= ?`), store, micros(cutoff))
		if err != nil {
			return fmt.Errorf("remove retired gossip keys of store %s: %w", store, err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("remove retired gossip keys of store %s: %w", store, err)
		}
		if n == 0 {
			return nil
		}
		return s.bumpRoster(ctx, tx, store)
	})
	return int(n), err
}
