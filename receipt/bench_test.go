package receipt_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/tillpoint/tillpoint/receipt"
	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// BenchmarkBlockESCPOS measures what the checkout path pays for the
// receipt: Build plus ESC/POS encoding of a full block. It sits next to a
// durable journal append, so its budget is a tenth of one: the baseline,
// measured first in the same run, is a bare SQLite insert of an op-sized
// row with the journal's pragmas (WAL, synchronous=FULL), one row per
// committed transaction. The metric "append-ratio" is block / append; it
// must stay below 0.1. "block=member" is the full block of a member (every
// section); "block=cardless" adds the Ed25519 signature of the claim code.
func BenchmarkBlockESCPOS(b *testing.B) {
	var appendNs float64
	b.Run("baseline=sqlite-durable-append", func(b *testing.B) {
		appendNs = benchSQLiteAppend(b)
	})
	// A second reference: a cardless block signs its claim, so it costs at
	// least one Ed25519 signature.
	b.Run("reference=ed25519-sign", func(b *testing.B) {
		key, msg := terminalKey(), make([]byte, 90)
		for b.Loop() {
			ed25519.Sign(key, msg)
		}
		if appendNs > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/appendNs, "append-ratio")
		}
	})
	for _, sc := range scenarios(b) {
		if sc.name != "member" && sc.name != "cardless" {
			continue
		}
		in := sc.in
		b.Run("block="+sc.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				blk, err := receipt.Build(in)
				if err != nil {
					b.Fatal(err)
				}
				p, err := blk.ESCPOS(receipt.PrintOptions{Width: receipt.Width80mm, CodePage: escpos.CP858})
				if err != nil {
					b.Fatal(err)
				}
				n = len(p)
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if appendNs > 0 { // zero when -bench filtered the baseline out
				b.ReportMetric(ns/appendNs, "append-ratio")
			}
			b.ReportMetric(float64(n), "bytes/block")
		})
	}
}

// benchSQLiteAppend runs b.N durable single-row transactions and returns
// the nanoseconds per append.
func benchSQLiteAppend(b *testing.B) float64 {
	path := filepath.Join(b.TempDir(), "journal.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var mode string
	var sync int
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		b.Fatalf("journal_mode %q, %v; want wal", mode, err)
	}
	if err := db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		b.Fatalf("synchronous %d, %v; want 2 (FULL)", sync, err)
	}
	if _, err := db.Exec(`CREATE TABLE journal (seq INTEGER PRIMARY KEY, op BLOB NOT NULL, hash BLOB NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	op := scenarios(b)[0].in.Ops[1]
	row := op.AppendCanonical(nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum := sha256.Sum256(row)
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO journal (seq, op, hash) VALUES (?, ?, ?)`, i+1, row, sum[:]); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
}
