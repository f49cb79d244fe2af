package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tillpoint/tillpoint/cloud"
)

// maxReconnects is how many times a ledger transaction whose connection
// to PostgreSQL broke before it committed runs again, on another
// connection, before the caller is told the ledger is unavailable: a
// server restarting takes longer than a request should wait.
const maxReconnects = 2

// commitError is a transaction's commit that failed: whether the
// transaction committed is not known when its connection broke there.
type commitError struct{ err error }

func (e *commitError) Error() string { return "commit ledger transaction: " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// connectionLost reports an error of a connection to PostgreSQL that
// broke, or of a server shutting down or not accepting connections yet,
// rather than of the transaction's own statements; never once ctx ended,
// which breaks the connection on purpose.
func connectionLost(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// connection_exception; admin_shutdown, crash_shutdown, cannot_connect_now
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// unavailable turns the error of a lost connection into
// cloud.ErrUnavailable, and logs it: a connection that broke at a commit
// each time, one that could not be had again at most once a minute.
func (s *Store) unavailable(err error) error {
	if errors.As(err, new(*commitError)) {
		s.log.Warn("the connection to PostgreSQL broke as a transaction committed: whether it did is not known (a batch is asked for again, and answered as its replay if it was)", "err", err)
		return fmt.Errorf("%w: the connection broke as the transaction committed, so it may have: %w", cloud.ErrUnavailable, err)
	}
	if n, log := s.lostLog.Tick(); log {
		s.log.Error("PostgreSQL does not answer: requests are answered 503 (the tills send their batches again) until it does; check that it runs and that the cloud reaches it",
			"failed", n, "err", err)
	}
	return fmt.Errorf("%w: %w", cloud.ErrUnavailable, err)
}

// sqliteLocked reports SQLite's SQLITE_BUSY: another process held the
// ledger's write lock for longer than the busy timeout.
func sqliteLocked(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// locked turns SQLITE_BUSY into cloud.ErrUnavailable, and logs it at
// most once a minute: nothing was written, and the request may be sent
// again once the other process lets go.
func (s *Store) locked(err error) error {
	if n, log := s.lostLog.Tick(); log {
		s.log.Error("another process holds the SQLite ledger's write lock: requests are answered 503 (the tills send their batches again) until it lets go; run one cloud per SQLite file, and end any sqlite3 session with an open transaction on it",
			"failed", n, "err", err)
	}
	return fmt.Errorf("%w: another process holds the SQLite ledger's write lock: %w", cloud.ErrUnavailable, err)
}
