package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// A lease lets one process at a time do a job over the ledger that several
// clouds would otherwise all do at once, and conflict over: point expiry.
// It is a row, not an advisory lock, so that it holds through a pooler
// that hands each transaction another server session, and it expires, so
// that a process that died holding it does not hold the job up for long.
// Its times are the database's clock, not the clouds': two clouds whose
// clocks disagree by more than the lease lasts still agree on whether it
// ran out.
const (
	// expiryLease is the lease an expiry run holds.
	expiryLease = "expiry"
	// leaseFor is how long a lease lasts unless it is renewed; a run
	// renews it with every chunk it commits.
	leaseFor = 2 * time.Minute
)

// newLeaseHolder returns a name for one run's hold of a lease.
func newLeaseHolder() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("name a lease holder: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// takeLease gives lease name to holder for leaseFor, if it is free,
// expired or holder's already, and reports whether holder has it.
func (s *Store) takeLease(ctx context.Context, name, holder string) (bool, error) {
	var taken bool
	err := s.inTx(ctx, func(tx *dbtx) error {
		var err error
		taken, err = s.holdLease(ctx, tx, name, holder)
		return err
	})
	return taken, err
}

// holdLease is takeLease inside tx; a run calls it again with each chunk,
// to renew its lease in the chunk's transaction.
func (s *Store) holdLease(ctx context.Context, tx *dbtx, name, holder string) (bool, error) {
	now := s.nowMicros()
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO leases (name, holder, expires) VALUES (?, ?, `+now+` + ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.expires <= `+now+` OR leases.holder = excluded.holder`),
		name, holder, leaseFor.Microseconds())
	if err != nil {
		return false, fmt.Errorf("take the %s lease: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("take the %s lease: %w", name, err)
	}
	return n == 1, nil
}

// nowMicros is an SQL expression for the database's time, in Unix
// microseconds: on PostgreSQL the transaction's start.
func (s *Store) nowMicros() string {
	if s.dialect == Postgres {
		return `CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) * 1000000 AS BIGINT)`
	}
	return `CAST(unixepoch('subsec') * 1000000 AS INTEGER)`
}

// releaseLease gives up holder's hold of lease name, if it still has it.
func (s *Store) releaseLease(ctx context.Context, name, holder string) error {
	return s.inTx(ctx, func(tx *dbtx) error {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE leases SET expires = 0 WHERE name = ? AND holder = ?`), name, holder); err != nil {
			return fmt.Errorf("release the %s lease: %w", name, err)
		}
		return nil
	})
}
