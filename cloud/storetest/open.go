package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
)

// PostgresEnv names the variable holding the test server's URL, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const PostgresEnv = "TILLPOINT_TEST_POSTGRES"

// OpenSQLite opens a fresh SQLite ledger in t.TempDir(). When the test
// ends the ledger is checked, then closed.
func OpenSQLite(t testing.TB, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	opts = testLogger(t, opts)
	s, err := sqlstore.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), opts)
	if err != nil {
		t.Fatalf("open sqlite ledger: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	t.Cleanup(func() { AssertConserved(t, s) })
	return s
}

// PostgresURL returns the test server's URL, skipping the test when it is
// not configured (failing instead when TILLPOINT_HIL=require).
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(PostgresEnv)
	if u == "" {
		if os.Getenv("TILLPOINT_HIL") == "require" {
			t.Fatalf("%s is not set and TILLPOINT_HIL=require: point it at a PostgreSQL server", PostgresEnv)
		}
		t.Skipf("%s is not set: skipping the PostgreSQL ledger tests", PostgresEnv)
	}
	return u
}

// OpenPostgres opens a fresh PostgreSQL ledger in a schema of its own, so
// tests of several packages can share one database. When the test ends the
// ledger is checked, closed, and its schema dropped.
func OpenPostgres(t testing.TB, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	s, _ := openPostgres(t, opts)
	t.Cleanup(func() { AssertConserved(t, s) })
	return s
}

// openPostgres returns the store and the URL that reaches its schema.
func openPostgres(t testing.TB, opts sqlstore.Options) (*sqlstore.Store, string) {
	t.Helper()
	opts = testLogger(t, opts)
	u := PostgresSchema(t)
	s, err := sqlstore.Open(context.Background(), u, opts)
	if err != nil {
		t.Fatalf("open postgres ledger at %s: %v", u, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, u
}

// PostgresSchema creates an empty schema of its own on the test server,
// dropped when the test ends, and returns the URL that reaches it.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	ctx := context.Background()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "tp_test_" + hex.EncodeToString(rnd[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s on %s: %v", schema, PostgresEnv, err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// CPUTime returns the user and system CPU time this process has used:
// benchmarks report it per op, steadier than wall time on a shared machine.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// AssertConserved fails t unless the ledger's Check passes.
func AssertConserved(t testing.TB, l cloud.Ledger) {
	t.Helper()
	if rep, err := l.Check(context.Background()); err != nil {
		t.Errorf("ledger conservation after the test: %v; all problems: %q", err, rep.Problems)
	}
}

// testLogger sends the ledger's log to the test's output when the caller set none.
func testLogger(t testing.TB, opts sqlstore.Options) sqlstore.Options {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return opts
}
