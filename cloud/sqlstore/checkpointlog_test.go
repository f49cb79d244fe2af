package sqlstore

import (
	"bytes"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailingCheckpointsWarnOnceAndRecoveryIsLogged defends the operator's
// view of a background checkpointer that keeps failing (a full disk): one
// warning that says what to check, not one every 250 ms, and a line when
// it works again.
func TestFailingCheckpointsWarnOnceAndRecoveryIsLogged(t *testing.T) {
	var log bytes.Buffer
	broken, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "broken.db"))
	if err != nil {
		t.Fatal(err)
	}
	broken.Close() // every checkpoint on it fails: "sql: database is closed"
	c := &checkpointer{db: broken, log: slog.New(slog.NewTextHandler(&log, nil))}
	for range 20 {
		c.checkpoint()
	}
	if n := strings.Count(log.String(), "background WAL checkpoint failing"); n != 1 || !strings.Contains(log.String(), "check the ledger's disk") {
		t.Fatalf("20 failed checkpoints logged %d warnings, want 1 that says what to check:\n%s", n, log.String())
	}
	if c.failures != 20 {
		t.Errorf("counted %d failures in a row, want 20", c.failures)
	}

	c.db, err = sql.Open("sqlite", filepath.Join(t.TempDir(), "ledger.db")+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer c.db.Close()
	c.checkpoint()
	if !strings.Contains(log.String(), "background WAL checkpoint works again") || !strings.Contains(log.String(), "failures_before=20") {
		t.Errorf("no recovery line after a checkpoint that worked:\n%s", log.String())
	}
	if c.failures != 0 {
		t.Errorf("failures in a row after a checkpoint that worked: %d, want 0", c.failures)
	}
}
