package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestPanicInTransactionFreesTheWriter: a panic inside a ledger transaction
// (a bug) must not leave SQLite's one writer connection held, or every
// later batch would hang instead of failing or being applied.
func TestPanicInTransactionFreesTheWriter(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic did not reach the caller")
				}
			}()
			s.inTx(ctx, func(tx *dbtx) error {
				// A statement the cache has not prepared yet, as in a batch.
				if _, err := tx.exec(ctx, `INSERT INTO stores (id, created_at) VALUES (?, ?)`, "s-panic", 1); err != nil {
					return err
				}
				panic("bug in the ledger")
			})
		}()
		done <- s.inTx(ctx, func(tx *dbtx) error {
			_, err := tx.exec(ctx, `INSERT INTO stores (id, created_at) VALUES (?, ?)`, "s-after", 1)
			return err
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a write after a panicked transaction: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer connection is still held 10s after a panicked transaction")
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM stores WHERE id = 's-panic'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the panicked transaction's write: %d rows (%v), want rolled back", n, err)
	}
}

// TestRunAloneOnlyExtends: a short stretch of one-at-a-time asked for
// after a small transaction's conflict must not cut short the longer one
// a large batch's conflict asked for.
func TestRunAloneOnlyExtends(t *testing.T) {
	s := &Store{}
	s.runAlone(time.Hour)
	long := s.aloneUntil.Load()
	s.runAlone(time.Millisecond)
	if got := s.aloneUntil.Load(); got != long {
		t.Errorf("a shorter stretch moved the end from %v to %v", time.Unix(0, long), time.Unix(0, got))
	}
	s.runAlone(2 * time.Hour)
	if got := s.aloneUntil.Load(); got <= long {
		t.Errorf("a longer stretch left the end at %v", time.Unix(0, got))
	}
}

// TestStorageFullKnowsEachDatabasesError: a full disk reaches the server
// as cloud.ErrStorageFull (a 503 the till retries) from either database,
// and nothing else does.
func TestStorageFullKnowsEachDatabasesError(t *testing.T) {
	for _, c := range []struct {
		err  error
		full bool
	}{
		{&pgconn.PgError{Code: "53100", Message: "could not extend file"}, true},
		{fmt.Errorf("commit: %w", &pgconn.PgError{Code: "53100"}), true},
		{&pgconn.PgError{Code: "40001"}, false},
		{fmt.Errorf("write wal: %w", syscall.ENOSPC), true},
		{syscall.EIO, false},
		{errors.New("database or disk is full"), false}, // a message is not a code
	} {
		if got := storageFull(c.err); got != c.full {
			t.Errorf("storageFull(%v) = %v, want %v", c.err, got, c.full)
		}
	}
}

// TestNoTableLocksKnowsAServerWithoutThem: a server without LOCK TABLE
// (CockroachDB answers it as a syntax error; others may call it not
// supported) opens without the writers' lock, and no other error is
// taken for that: a permission error must stop the cloud, not quietly
// turn the lock off.
func TestNoTableLocksKnowsAServerWithoutThem(t *testing.T) {
	for _, c := range []struct {
		err  error
		none bool
	}{
		{&pgconn.PgError{Code: "42601", Message: `at or near "lock": syntax error`}, true},
		{fmt.Errorf("lock: %w", &pgconn.PgError{Code: "0A000"}), true},
		{&pgconn.PgError{Code: "42501", Message: "permission denied for table ledger_writers"}, false},
		{&pgconn.PgError{Code: "42P01", Message: `relation "ledger_writers" does not exist`}, false},
		{errors.New("syntax error"), false}, // a message is not a code
	} {
		if got := noTableLocks(c.err); got != c.none {
			t.Errorf("noTableLocks(%v) = %v, want %v", c.err, got, c.none)
		}
	}
}

// TestConnectionLostIsNotATransactionsOwnError: only a broken connection
// or a server going down makes a transaction run again on another
// connection, never an error of its own statements, and never a request
// that ended (which breaks the connection on purpose).
func TestConnectionLostIsNotATransactionsOwnError(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		err  error
		lost bool
	}{
		{&pgconn.PgError{Code: "57P01", Severity: "FATAL", Message: "terminating connection due to administrator command"}, true},
		{fmt.Errorf("read: %w", &pgconn.PgError{Code: "08006"}), true},
		{&commitError{fmt.Errorf("commit: %w", io.ErrUnexpectedEOF)}, true},
		{fmt.Errorf("exec: %w", pgconn.ErrConnClosed), true},
		{&pgconn.PgError{Code: "40001"}, false},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "53100"}, false},
		{errors.New("connection reset by peer"), false}, // a message is not a cause
		{nil, false},
	} {
		if got := connectionLost(ctx, c.err); got != c.lost {
			t.Errorf("connectionLost(%v) = %v, want %v", c.err, got, c.lost)
		}
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if connectionLost(ended, fmt.Errorf("read: %w", io.ErrUnexpectedEOF)) {
		t.Error("a broken connection of a request that ended counts as lost: the request would run again after its client left")
	}
}
