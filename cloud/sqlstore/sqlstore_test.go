package sqlstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
)

func TestLedgerSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cloud.Ledger { return storetest.OpenSQLite(t, sqlstore.Options{}) })
}

func TestLedgerPostgres(t *testing.T) {
	storetest.PostgresURL(t)
	storetest.Run(t, func(t *testing.T) cloud.Ledger { return storetest.OpenPostgres(t, sqlstore.Options{}) })
}

func TestReopenKeepsLedgerAndMigratesOnce(t *testing.T) {
	ctx := context.Background()
	path := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatal(err)
	}
	tl := storetest.NewTill(t, s, "t1", "s1")
	tl.Send(t, s, tl.Earn(storetest.Card(1), 1000, 10))
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s, err = sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != sqlstore.MigrationCount {
		t.Errorf("migrations recorded: got %d, %v; want %d, each applied once", n, err, sqlstore.MigrationCount)
	}
	a := tl.Send(t, s, tl.Earn(storetest.Card(1), 500, 5))
	if a.Watermark != 2 || a.Snapshots[0].Balance != 15 {
		t.Errorf("after reopen: got watermark %d balance %d, want 2 and 15", a.Watermark, a.Snapshots[0].Balance)
	}
	storetest.AssertConserved(t, s)
}

func TestOpenErrorsSayWhatToFix(t *testing.T) {
	ctx := context.Background()
	if _, err := sqlstore.Open(ctx, "sqlite:", sqlstore.Options{}); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("empty sqlite path: got %v, want ErrInvalidInput", err)
	}
	_, err := sqlstore.Open(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", sqlstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "check --db") {
		t.Errorf("unreachable postgres: got %v, want an error telling to check --db", err)
	}
	dir := t.TempDir()
	if _, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "missing", "ledger.db"), sqlstore.Options{}); err == nil {
		t.Errorf("sqlite in a missing directory: got no error")
	}
}
