package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
)

// journalOp is an op as 'tillpoint journal export' writes it.
type journalOp struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Seq    uint64 `json:"seq"`
	Card   string `json:"card_hash"`
	Points int64  `json:"points"`
	Acked  bool   `json:"acked"`
}

// exportJournal reads the till's journal with the binary's own export,
// which opens it read-only.
func exportJournal(t *testing.T, tl *till) []journalOp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := harness.Run(ctx, t, "journal", "export", "--db", filepath.Join(tl.term.StateDir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	var ops []journalOp
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var o journalOp
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("journal export line %q: %v", sc.Text(), err)
		}
		if o.ID == "" {
			t.Fatalf("journal export line without an op id: %q", sc.Text())
		}
		ops = append(ops, o)
	}
	return ops
}

// verifyJournal runs 'tillpoint journal verify' on the till's journal.
func verifyJournal(t *testing.T, tl *till) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := harness.Run(ctx, t, "journal", "verify", "--db", filepath.Join(tl.term.StateDir, "journal.db")); err != nil {
		t.Errorf("journal verify: %v\n%s", err, out)
	}
}

// stats is what 'tillpoint journal stats --json' says.
type stats struct {
	Ops     int64 `json:"ops"`
	Unacked int64 `json:"unacked"`
}

// journalStats reads the till's journal counts with the binary.
func journalStats(ctx context.Context, t *testing.T, tl *till) stats {
	t.Helper()
	out, err := harness.Run(ctx, t, "journal", "stats", "--json", "--db", filepath.Join(tl.term.StateDir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	var st stats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("journal stats --json: %v: %s", err, out)
	}
	return st
}
