package journal_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

const (
	testTerminal = "till-1"
	testStore    = "store-7"
)

// earnOp returns a valid earn op for card n; the journal fills the rest.
func earnOp(n int) loyalty.Op {
	return loyalty.Op{
		Kind:   loyalty.OpEarn,
		Card:   cardHash(n),
		Points: loyalty.Points(n%50 + 1),
		Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{
			{SKU: "4006381333931", Category: "food", Quantity: 2, Amount: 1299},
			{SKU: "5000112637922", Category: "drinks", Quantity: 1, Amount: 349},
		}},
		Receipt:      fmt.Sprintf("R-%06d", n),
		Cashier:      "cashier-3",
		RulesVersion: 4,
	}
}

func cardHash(n int) loyalty.CardHash {
	return loyalty.CardHash{0xc0, byte(n >> 8), byte(n), 0x01}
}

func openJournal(t testing.TB, path string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), path, testOptions())
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func testOptions() journal.Options {
	return journal.Options{Terminal: testTerminal, Store: testStore, Logger: slog.New(slog.DiscardHandler), Now: testClock}
}

func openReadOnly(t testing.TB, path string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), path, journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open(%s, read-only): %v", path, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func mustVerify(t testing.TB, j *journal.Journal) journal.Report {
	t.Helper()
	rep, err := j.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func TestAppendAssignsGaplessSeqAndChainLink(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	var prev journal.Link
	for i := 1; i <= 5; i++ {
		op, err := j.Append(ctx, earnOp(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if op.Epoch != 1 || op.Seq != uint64(i) {
			t.Fatalf("op %d: got epoch %d seq %d, want epoch 1 seq %d", i, op.Epoch, op.Seq, i)
		}
		if op.Terminal != testTerminal || op.Store != testStore || op.ID.IsZero() || op.HLC == 0 || op.WallTime.IsZero() {
			t.Fatalf("op %d: journal did not fill terminal, store, id, hlc, wall time: %+v", i, op)
		}
		es, err := j.Entries(ctx, int64(i-1), 1)
		if err != nil || len(es) != 1 {
			t.Fatalf("Entries after %d: got %d entries, err %v; want 1", i-1, len(es), err)
		}
		want := journal.ChainLink(prev, op.AppendCanonical(nil))
		if es[0].Link != want {
			t.Fatalf("op %d: got link %x, want SHA-256(prev || canonical op) %x", i, es[0].Link, want)
		}
		if es[0].Op.ID != op.ID || es[0].Op.Seq != op.Seq || !es[0].Op.WallTime.Equal(op.WallTime) {
			t.Fatalf("op %d: stored op differs from the returned one: got %+v, want %+v", i, es[0].Op, op)
		}
		prev = want
	}
	rep := mustVerify(t, j)
	if rep.Ops != 5 || rep.Seq != 5 || rep.Link != prev {
		t.Fatalf("Verify: got %d ops up to seq %d link %x, want 5 ops up to seq 5 link %x", rep.Ops, rep.Seq, rep.Link, prev)
	}
}

func TestAppendRejectsInvalidOpAndKeepsSequence(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	if _, err := j.Append(ctx, earnOp(1)); err != nil {
		t.Fatal(err)
	}
	bad := earnOp(2)
	bad.Basket = nil
	if _, err := j.Append(ctx, bad); !errors.Is(err, journal.ErrInvalid) || !errors.Is(err, loyalty.ErrInvalidOp) {
		t.Fatalf("Append(earn without basket): got %v, want ErrInvalid wrapping loyalty.ErrInvalidOp", err)
	}
	other := earnOp(3)
	other.Terminal = "till-9"
	if _, err := j.Append(ctx, other); !errors.Is(err, journal.ErrInvalid) {
		t.Fatalf("Append(op of another terminal): got %v, want ErrInvalid", err)
	}
	op, err := j.Append(ctx, earnOp(4))
	if err != nil || op.Seq != 2 {
		t.Fatalf("Append after refusals: got seq %d err %v, want seq 2", op.Seq, err)
	}
}

func TestAppendDuplicateIDReturnsStoredOp(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	first, err := j.Append(ctx, earnOp(1))
	if err != nil {
		t.Fatal(err)
	}
	again := earnOp(1)
	again.ID = first.ID
	got, err := j.Append(ctx, again)
	if !errors.Is(err, journal.ErrDuplicateOp) {
		t.Fatalf("Append(same id): got %v, want ErrDuplicateOp", err)
	}
	if got.Seq != first.Seq || got.ID != first.ID {
		t.Fatalf("Append(same id): got stored op seq %d id %s, want seq %d id %s", got.Seq, got.ID, first.Seq, first.ID)
	}
	next, err := j.Append(ctx, earnOp(2))
	if err != nil || next.Seq != 2 {
		t.Fatalf("Append after duplicate: got seq %d err %v, want seq 2 (no gap)", next.Seq, err)
	}
	mustVerify(t, j)
}

// TestConcurrentAppendsStayGaplessAndChained defends the sequence and the
// chain under many goroutines (run with -race), including a duplicate in
// the middle of group-committed batches.
func TestConcurrentAppendsStayGaplessAndChained(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	const workers, each = 16, 25
	seqs := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				op, err := j.Append(ctx, earnOp(w*each+i))
				if err != nil {
					errs <- err
					return
				}
				seqs <- op.Seq
				if i == each/2 { // a retry of an acknowledged op, racing the others
					dup := earnOp(0)
					dup.ID = op.ID
					if _, err := j.Append(ctx, dup); !errors.Is(err, journal.ErrDuplicateOp) {
						errs <- fmt.Errorf("duplicate append: got %v, want ErrDuplicateOp", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	close(seqs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d handed out twice", s)
		}
		seen[s] = true
	}
	for s := uint64(1); s <= workers*each; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing: got %d distinct seqs, want 1..%d", s, len(seen), workers*each)
		}
	}
	rep := mustVerify(t, j)
	if rep.Ops != workers*each {
		t.Fatalf("Verify: got %d ops, want %d", rep.Ops, workers*each)
	}
}

func TestAppendAfterCloseFails(t *testing.T) {
	j, err := journal.Open(context.Background(), filepath.Join(t.TempDir(), "journal.db"), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := j.Append(context.Background(), earnOp(1)); !errors.Is(err, journal.ErrClosed) {
		t.Fatalf("Append after Close: got %v, want ErrClosed", err)
	}
}

func TestOpenRefusesAnotherTerminalsJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j := openJournal(t, path)
	j.Close()
	opts := testOptions()
	opts.Terminal = "till-2"
	_, err := journal.Open(context.Background(), path, opts)
	if !errors.Is(err, journal.ErrWrongTerminal) {
		t.Fatalf("Open as till-2: got %v, want ErrWrongTerminal", err)
	}
}

// fileURI is path as an SQLite URI, escaped: a '#' or '?' in a test's
// directory name must not cut the path short.
func fileURI(path string) string { return "file:" + (&url.URL{Path: path}).EscapedPath() }

// tamper runs one statement on a closed journal's file, as an attacker or a
// broken disk would.
func tamper(t *testing.T, path, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", fileURI(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt, args...); err != nil {
		t.Fatalf("tamper %q: %v", stmt, err)
	}
}

func TestVerifyNamesFirstBrokenLink(t *testing.T) {
	ctx := context.Background()
	newJournal := func(t *testing.T) (string, []loyalty.Op) {
		path := filepath.Join(t.TempDir(), "journal.db")
		j := openJournal(t, path)
		var ops []loyalty.Op
		for i := 1; i <= 8; i++ {
			op, err := j.Append(ctx, earnOp(i))
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, op)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		return path, ops
	}
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, path string, ops []loyalty.Op)
		wantSeq uint64
	}{
		{"body re-encoded with more points", func(t *testing.T, path string, ops []loyalty.Op) {
			op := ops[4]
			op.Points += 1000
			tamper(t, path, "UPDATE ops SET body = ?, points = ? WHERE seq = 5", op.AppendCanonical(nil), int64(op.Points))
		}, 5},
		{"points column changed", func(t *testing.T, path string, ops []loyalty.Op) {
			tamper(t, path, "UPDATE ops SET points = points + 1 WHERE seq = 3")
		}, 3},
		{"row deleted", func(t *testing.T, path string, ops []loyalty.Op) {
			tamper(t, path, "DELETE FROM ops WHERE seq = 6")
		}, 7},
		{"link overwritten", func(t *testing.T, path string, ops []loyalty.Op) {
			tamper(t, path, "UPDATE ops SET link = zeroblob(32) WHERE seq = 2")
		}, 2},
		{"body garbled", func(t *testing.T, path string, ops []loyalty.Op) {
			tamper(t, path, "UPDATE ops SET body = X'0102' WHERE seq = 8")
		}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, ops := newJournal(t)
			tc.tamper(t, path, ops)
			j := openReadOnly(t, path) // as 'tillpoint journal verify' does
			_, err := j.Verify(ctx)
			var ce *journal.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify: got %v, want a *ChainError", err)
			}
			if ce.Seq != tc.wantSeq || !errors.Is(err, journal.ErrCorrupt) {
				t.Fatalf("Verify: got broken seq %d (%v), want seq %d wrapping ErrCorrupt", ce.Seq, err, tc.wantSeq)
			}
		})
	}
}

func TestNewEpochRestartsSeqAndContinuesChain(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	last, err := j.Append(ctx, earnOp(1))
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := j.NewEpoch(ctx, "cloud watermark ahead")
	if err != nil || epoch != 2 {
		t.Fatalf("NewEpoch: got %d, %v; want 2", epoch, err)
	}
	op, err := j.Append(ctx, earnOp(2))
	if err != nil || op.Epoch != epoch || op.Seq != 1 {
		t.Fatalf("Append in new epoch: got epoch %d seq %d err %v, want epoch %d seq 1", op.Epoch, op.Seq, err, epoch)
	}
	es, err := j.Entries(ctx, 0, 10)
	if err != nil || len(es) != 2 {
		t.Fatalf("Entries: got %d, %v; want 2", len(es), err)
	}
	if want := journal.ChainLink(es[0].Link, op.AppendCanonical(nil)); es[1].Link != want {
		t.Fatalf("first link of epoch 2: got %x, want it chained to epoch 1's last op %s", es[1].Link, last.ID)
	}
	rep := mustVerify(t, j)
	if rep.Epochs != 2 || rep.Ops != 2 {
		t.Fatalf("Verify: got %d epochs %d ops, want 2 and 2", rep.Epochs, rep.Ops)
	}
}

func TestOpsAfterAndMarkAcked(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	opts := testOptions()
	opts.Now = func() time.Time { return now }
	j, err := journal.Open(ctx, filepath.Join(t.TempDir(), "journal.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := 1; i <= 6; i++ {
		now = now.Add(time.Minute)
		if _, err := j.Append(ctx, earnOp(i)); err != nil {
			t.Fatal(err)
		}
	}
	ops, err := j.OpsAfter(ctx, 1, 2, 3)
	if err != nil || len(ops) != 3 || ops[0].Seq != 3 || ops[2].Seq != 5 {
		t.Fatalf("OpsAfter(1, 2, 3): got %d ops %v; want seqs 3..5", len(ops), err)
	}
	if err := j.MarkAcked(ctx, 1, 4); err != nil {
		t.Fatalf("MarkAcked(1, 4): %v", err)
	}
	if err := j.MarkAcked(ctx, 1, 2); err != nil {
		t.Fatalf("MarkAcked(1, 2) after (1, 4): %v", err)
	}
	s, err := j.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOldest := time.Date(2026, 11, 23, 9, 5, 0, 0, time.UTC)
	if s.Unacked != 2 || s.AckedSeq != 4 || !s.OldestUnacked.Equal(wantOldest) {
		t.Fatalf("Stats: got unacked %d acked seq %d oldest %v, want 2, 4, %v", s.Unacked, s.AckedSeq, s.OldestUnacked, wantOldest)
	}
	if err := j.MarkAcked(ctx, 1, 7); !errors.Is(err, journal.ErrAckAhead) {
		t.Fatalf("MarkAcked(1, 7) with 6 ops: got %v, want ErrAckAhead", err)
	}
}

func TestAppendWithCancelledContextRecordsNothing(t *testing.T) {
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := j.Append(ctx, earnOp(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: got %v, want context.Canceled", err)
	}
	op, err := j.Append(context.Background(), earnOp(2))
	if err != nil || op.Seq != 1 {
		t.Fatalf("next Append: got seq %d, %v; want seq 1 (nothing recorded before)", op.Seq, err)
	}
}

// TestMarkAckedChainSurvivesReopen: the hash of the last batch the cloud
// applied is kept with the acknowledgement, across a restart, so the
// uplink chains its next batch to it; an acknowledgement the journal
// refuses records no hash either.
func TestMarkAckedChainSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(ctx, path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, j, 3)
	if e, s, h, err := j.Chain(ctx); err != nil || e != 0 || s != 0 || h != nil {
		t.Fatalf("Chain of a new journal: got %d %d %x %v, want nothing", e, s, h, err)
	}
	hash := bytes.Repeat([]byte{0xab}, 32)
	if err := j.MarkAckedChain(ctx, 1, 2, hash); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkAckedChain(ctx, 1, 9, bytes.Repeat([]byte{0xcd}, 32)); !errors.Is(err, journal.ErrAckAhead) {
		t.Fatalf("MarkAckedChain beyond the journal: got %v, want ErrAckAhead", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openJournal(t, path)
	e, s, h, err := j.Chain(ctx)
	if err != nil || e != 1 || s != 2 || !bytes.Equal(h, hash) {
		t.Fatalf("Chain after reopen: got %d %d %x %v, want 1 2 %x", e, s, h, err, hash)
	}
	if e, s, err := j.Acked(ctx); err != nil || e != 1 || s != 2 {
		t.Fatalf("Acked after reopen: got %d %d %v, want 1 2", e, s, err)
	}
}

// TestResendSurvivesReopenUntilAnAckReachesTheWatermark: a resend of the
// journal (the cloud lost ops it had acknowledged) empties the outbox,
// counts every op after its point as unsent, survives a restart, moves
// with each acknowledgement below the watermark and ends with the first
// that reaches it; the watermark itself never moves back.
func TestResendSurvivesReopenUntilAnAckReachesTheWatermark(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := journal.Open(ctx, path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, j, 6)
	if err := j.MarkAcked(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	if err := j.PutSealed(ctx, 1, 5, 6, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	resending := func(when string, wantOK bool, wantEpoch uint32, wantSeq uint64, wantUnsent int64) {
		t.Helper()
		e, s, ok, err := j.Resending(ctx)
		if err != nil || ok != wantOK || e != wantEpoch || s != wantSeq {
			t.Fatalf("%s: Resending got %d/%d %v (%v), want %d/%d %v", when, e, s, ok, err, wantEpoch, wantSeq, wantOK)
		}
		st, err := j.Stats(ctx)
		if err != nil || st.Unacked != wantUnsent || st.AckedSeq != 4 {
			t.Fatalf("%s: Stats got unacked %d, acked seq %d (%v), want %d, 4", when, st.Unacked, st.AckedSeq, err, wantUnsent)
		}
	}
	resending("before", false, 0, 0, 2)
	if err := j.ResendAll(ctx); err != nil {
		t.Fatal(err)
	}
	if sealed, err := j.Sealed(ctx); err != nil || len(sealed) != 0 {
		t.Fatalf("outbox after ResendAll: %d batches (%v), want none", len(sealed), err)
	}
	resending("after ResendAll", true, 0, 0, 6)
	if err := j.MarkAcked(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openJournal(t, path)
	resending("after an ack at 2 and a reopen", true, 1, 2, 4)
	if err := j.MarkAcked(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	resending("after an ack at the watermark", false, 0, 0, 2)
}

// testClock is the journals' clock in these tests: it stands still, so
// that what depends on the time since a database was created (the epoch
// floor, lostEpochFloor) is the same in every run, however slow.
func testClock() time.Time { return time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) }

// TestResendFromOnlyBelowWhatIsAcknowledged: a gap ack below the
// watermark (a cloud restored from a backup) records a resend from there,
// never one at or above the watermark or above a pending resend point, and
// an ack reaching the watermark ends it.
func TestResendFromOnlyBelowWhatIsAcknowledged(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	appendN(t, j, 6)
	if err := j.MarkAcked(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	resending := func(when string, wantOK bool, wantSeq uint64) {
		t.Helper()
		_, s, ok, err := j.Resending(ctx)
		if err != nil || ok != wantOK || s != wantSeq {
			t.Fatalf("%s: Resending got seq %d, pending %v (%v), want %d, %v", when, s, ok, err, wantSeq, wantOK)
		}
	}
	for _, seq := range []uint64{4, 5, 9} { // at the watermark, above it, not in the journal
		if err := j.ResendFrom(ctx, 1, seq); err != nil {
			t.Fatal(err)
		}
		resending("ResendFrom at or above the watermark", false, 0)
	}
	if err := j.ResendFrom(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	resending("ResendFrom below the watermark", true, 2)
	if err := j.ResendFrom(ctx, 1, 3); err != nil {
		t.Fatal(err)
	}
	resending("ResendFrom above the pending point", true, 2)
	if st, err := j.Stats(ctx); err != nil || st.Unacked != 4 {
		t.Fatalf("Stats during the resend: unacked %d (%v), want 4: the ops after the resend point", st.Unacked, err)
	}
	if err := j.MarkAcked(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	resending("after an ack at the watermark", false, 0)
}
