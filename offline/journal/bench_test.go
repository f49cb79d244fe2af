package journal_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// bareInserter is the baseline: the journal's row (same columns, same byte
// sizes) inserted and committed one at a time with the same pragmas (WAL,
// synchronous=FULL, busy timeout, foreign keys), without sequence, chain,
// validation, indexes or group commit.
type bareInserter struct {
	db   *sql.DB
	stmt *sql.Stmt
	body []byte
	link []byte
	card []byte
	seq  int64
}

func newBareInserter(b *testing.B, dir string) *bareInserter {
	b.Helper()
	path := filepath.Join(dir, "bare.db")
	db, err := sql.Open("sqlite", fileURI(path)+"?_busy_timeout=5000&_foreign_keys=on&_journal_mode=WAL&_synchronous=FULL")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE ops (pos INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
		id BLOB NOT NULL, kind INTEGER NOT NULL, card BLOB NOT NULL, points INTEGER NOT NULL, offline INTEGER NOT NULL,
		wall_time INTEGER NOT NULL, body BLOB NOT NULL, link BLOB NOT NULL) STRICT`); err != nil {
		b.Fatal(err)
	}
	stmt, err := db.Prepare("INSERT INTO ops (epoch, seq, id, kind, card, points, offline, wall_time, body, link) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		b.Fatal(err)
	}
	op := earnOp(1)
	op.ID, _ = loyalty.NewOpID(time.Now(), rand.Reader)
	op.Terminal, op.Store, op.WallTime, op.HLC, op.Epoch, op.Seq = testTerminal, testStore, time.Now(), 1, 1, 1000
	card := op.Card
	return &bareInserter{db: db, stmt: stmt, body: op.AppendCanonical(nil), link: make([]byte, 32), card: card[:]}
}

func (bi *bareInserter) insert(b *testing.B) {
	bi.seq++
	id := make([]byte, 16)
	rand.Read(id)
	if _, err := bi.stmt.Exec(1, bi.seq, id, 2, bi.card, 10, 0, time.Now().UnixNano(), bi.body, bi.link); err != nil {
		b.Fatal(err)
	}
}

func benchJournal(b *testing.B, dir string) *journal.Journal {
	b.Helper()
	j, err := journal.Open(context.Background(), filepath.Join(dir, "journal.db"),
		journal.Options{Terminal: testTerminal, Store: testStore, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	return j
}

// BenchmarkBareInsert is the baseline alone: one row committed per op.
func BenchmarkBareInsert(b *testing.B) {
	bi := newBareInserter(b, b.TempDir())
	b.ResetTimer()
	for range b.N {
		bi.insert(b)
	}
}

// BenchmarkJournalAppend is one durable Append per op. Each iteration also
// runs one bare insert (outside the timer) on a database in the same
// directory, so both see the same disk at the same moment; x-bare is
// Append's time over the bare insert's (goal: at most 1.3).
func BenchmarkJournalAppend(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	j := benchJournal(b, dir)
	bi := newBareInserter(b, dir)
	var appendT, bareT time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := j.Append(ctx, earnOp(i)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		b.StopTimer()
		bi.insert(b)
		t2 := time.Now()
		b.StartTimer()
		appendT += t1.Sub(t0)
		bareT += t2.Sub(t1)
	}
	b.ReportMetric(float64(bareT.Nanoseconds())/float64(b.N), "bare-ns/op")
	b.ReportMetric(float64(appendT)/float64(bareT), "x-bare")
}

// BenchmarkJournalAppendParallel is 8 goroutines appending at once; group
// commit lets their ops share commits. The timed ops run in chunks of 256;
// after each chunk (outside the timer) a single appender appends 64 ops to
// the same journal, so both see the same disk and the same neighbours.
// x-single is the ops/s of 8 appenders over the ops/s of one (goal: >= 4).
func BenchmarkJournalAppendParallel(b *testing.B) {
	const appenders, chunk, singleChunk = 8, 256, 64
	ctx := context.Background()
	j := benchJournal(b, b.TempDir())
	run := func(workers, n int) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					if _, err := j.Append(ctx, earnOp(int(i))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var parallel, single time.Duration
	var singleOps int
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		parallel += run(appenders, min(chunk, b.N-done))
		b.StopTimer()
		single += run(1, singleChunk)
		singleOps += singleChunk
		b.StartTimer()
	}
	b.StopTimer()
	parallelRate := float64(b.N) / parallel.Seconds()
	singleRate := float64(singleOps) / single.Seconds()
	b.ReportMetric(parallelRate, "ops/s")
	b.ReportMetric(singleRate, "single-ops/s")
	b.ReportMetric(parallelRate/singleRate, "x-single")
}
