package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

const clearUID = "04A1B2C3D4E5F6"

// newTestJournal writes a journal of n earn ops by one NFC card and
// returns its path.
func newTestJournal(t *testing.T, n int) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(ctx, path, journal.Options{Terminal: "till-1", Store: "store-7", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	tok, err := loyalty.NewCardToken(loyalty.CardNFC, clearUID)
	if err != nil {
		t.Fatal(err)
	}
	card := tok.Hash(loyalty.CardKey("test program key"))
	for i := range n {
		op := loyalty.Op{Kind: loyalty.OpEarn, Card: card, Points: loyalty.Points(10 + i), Receipt: "R-1",
			Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "4006381333931", Quantity: 1, Amount: 1000}}}}
		if _, err := j.Append(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.MarkAcked(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestJournalStatsListExportVerify(t *testing.T) {
	path := newTestJournal(t, 5)

	code, out, errOut := run(t, "journal", "stats", "--db", path, "--json")
	var st journalStatsJSON
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("journal stats --json: got exit %d, stdout %q, stderr %q; want 0 and JSON", code, out, errOut)
	}
	if st.Ops != 5 || st.Seq != 5 || st.Unacked != 3 || st.AckedSeq != 2 || st.Terminal != "till-1" || st.OldestUnacked == nil {
		t.Fatalf("journal stats: got %+v, want 5 ops up to seq 5, 3 unacknowledged after seq 2, terminal till-1", st)
	}
	if code, out, _ := run(t, "journal", "stats", "--db", path); code != 0 || !strings.Contains(out, "5 in 1 epochs") {
		t.Fatalf("journal stats: got exit %d, output %q; want 0 and %q", code, out, "5 in 1 epochs")
	}

	code, out, errOut = run(t, "journal", "list", "--db", path, "--limit", "3")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "POS") || !strings.Contains(errOut, "--after 3") {
		t.Fatalf("journal list --limit 3: got exit %d, %d lines %q, stderr %q; want a header, 3 ops and a hint to --after 3", code, len(lines), out, errOut)
	}

	code, out, errOut = run(t, "journal", "export", "--db", path)
	if code != 0 {
		t.Fatalf("journal export: got exit %d, stderr %q", code, errOut)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	var seq uint64
	for sc.Scan() {
		var op journalOpJSON
		if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
			t.Fatalf("journal export: line %q is not JSON: %v", sc.Text(), err)
		}
		seq++
		if op.Seq != seq || op.Kind != "earn" || len(op.CardHash) != 64 || op.Acked != (seq <= 2) || op.Basket == nil {
			t.Fatalf("journal export line %d: got %+v, want seq %d, an earn with its basket and a 64-digit card hash, acked %v", seq, op, seq, seq <= 2)
		}
	}
	if seq != 5 {
		t.Fatalf("journal export: got %d lines, want 5", seq)
	}

	code, out, errOut = run(t, "journal", "verify", "--db", path)
	if code != 0 || !strings.HasPrefix(out, "ok: 5 ops") {
		t.Fatalf("journal verify: got exit %d, stdout %q, stderr %q; want 0 and ok: 5 ops", code, out, errOut)
	}
}

// TestJournalOutputNeverShowsTheCard defends invariant 7 in the CLI.
func TestJournalOutputNeverShowsTheCard(t *testing.T) {
	path := newTestJournal(t, 3)
	for _, cmd := range []string{"stats", "list", "export", "verify"} {
		code, out, errOut := run(t, "journal", cmd, "--db", path)
		if code != 0 {
			t.Fatalf("journal %s: got exit %d, stderr %q", cmd, code, errOut)
		}
		for _, leak := range []string{clearUID, strings.ToLower(clearUID)} {
			if strings.Contains(out+errOut, leak) {
				t.Fatalf("journal %s printed the card's UID %s in the clear", cmd, leak)
			}
		}
	}
}

func TestJournalVerifyNamesBrokenOp(t *testing.T) {
	path := newTestJournal(t, 5)
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM ops WHERE seq = 3"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, _, errOut := run(t, "journal", "verify", "--db", path)
	if code != 1 || !strings.Contains(errOut, "seq 4") || !strings.Contains(errOut, "gap") {
		t.Fatalf("journal verify with seq 3 deleted: got exit %d, stderr %q; want 1 naming seq 4 and a gap", code, errOut)
	}
}

func TestJournalHelpAndUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantCode int
		want     string // in stdout or stderr
	}{
		{[]string{"journal", "--help"}, 0, "Usage: tillpoint journal <command>"},
		{[]string{"journal", "stats", "--help"}, 0, "Usage: tillpoint journal stats --db PATH"},
		{[]string{"journal", "list", "--help"}, 0, "-limit"},
		{[]string{"journal", "verify", "--help"}, 0, "names"},
		{[]string{"journal", "export", "--help"}, 0, "JSON object per line"},
		{[]string{"journal"}, 2, "which journal command"},
		{[]string{"journal", "compact", "--db", "x"}, 2, `unknown journal command "compact"`},
		{[]string{"journal", "stats"}, 2, "--db PATH is required"},
		{[]string{"journal", "list", "--db", "x", "--limit", "-1"}, 2, "cannot be negative"},
		{[]string{"journal", "stats", "--db", filepath.Join(t.TempDir(), "none.db")}, 1, "check the --db path"},
	} {
		code, out, errOut := run(t, tc.args...)
		if code != tc.wantCode || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("tillpoint %s: got exit %d, output %q; want exit %d and %q", strings.Join(tc.args, " "), code, out+errOut, tc.wantCode, tc.want)
		}
	}
}

// TestJournalCommandsAreSafeWhileTheAgentWrites backs the claim in
// 'tillpoint journal --help': the commands read a journal that is being
// appended to, see a consistent prefix, and change nothing (no epoch, no
// continuity token rotated: the sidecar is untouched).
func TestJournalCommandsAreSafeWhileTheAgentWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(ctx, path, journal.Options{Terminal: "till-1", Logger: slog.New(slog.DiscardHandler), SidecarInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	sidecar, err := os.ReadFile(journal.SidecarPath(path))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			op := loyalty.Op{Kind: loyalty.OpEarn, Card: loyalty.CardHash{1}, Points: 5,
				Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "sku", Quantity: 1, Amount: 500}}}}
			if _, err := j.Append(ctx, op); err != nil {
				done <- err
				return
			}
		}
	}()
	for range 3 {
		for _, cmd := range []string{"verify", "stats", "export"} {
			if code, _, errOut := run(t, "journal", cmd, "--db", path); code != 0 {
				close(stop)
				t.Fatalf("journal %s while appending: got exit %d, stderr %q", cmd, code, errOut)
			}
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("Append while the CLI reads: %v", err)
	}
	if now, err := os.ReadFile(journal.SidecarPath(path)); err != nil || string(now) != string(sidecar) {
		t.Fatalf("the CLI changed the epoch sidecar: got %s, want %s (err %v)", now, sidecar, err)
	}
	if rep, err := j.Verify(ctx); err != nil || rep.Epochs != 1 {
		t.Fatalf("Verify after: got %d epochs, %v; want 1", rep.Epochs, err)
	}
}
