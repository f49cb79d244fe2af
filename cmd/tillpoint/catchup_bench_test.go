package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/enroll"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// BenchmarkCatchUp times a terminal back from three days offline: a journal
// of 50,000 unsent ops (TILLPOINT_CATCHUP_OPS to change it) shipped by the
// real uplink to `tillpoint cloud` on loopback (SQLite) until every op is
// acknowledged. Goal: within 10 s. The baseline, in the same run, applies
// the same ops in batches of the same size straight to a second ledger
// (no journal reads, signing, HTTP or acks); x-bare is the ratio of times.
func BenchmarkCatchUp(b *testing.B) {
	n := 50000
	if v := os.Getenv("TILLPOINT_CATCHUP_OPS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ctx := context.Background()
		dir := b.TempDir()
		db := "sqlite:" + filepath.Join(dir, "ledger.db")
		cl := startCloud(b, nil, "--db", db, "--log-format", "text")
		st := enrollForBench(b, cl.url, db, filepath.Join(dir, "terminal"))
		j, err := journal.Open(ctx, filepath.Join(dir, "journal.db"), journal.Options{Terminal: st.Terminal, Store: st.Store, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		fillJournal(b, j, n)
		signer, err := batch.NewSigner(st.Terminal, st.Program, st.Key)
		if err != nil {
			b.Fatal(err)
		}
		cfg := uplink.DefaultConfig()
		cfg.URL, cfg.Signer, cfg.CloudKey, cfg.Client = st.CloudURL, signer, st.CloudKey, http.DefaultClient
		cfg.Logger = slog.New(slog.DiscardHandler)
		u, err := uplink.New(j, cfg)
		if err != nil {
			b.Fatal(err)
		}
		ops, err := j.OpsAfter(ctx, 0, 0, n)
		if err != nil || len(ops) != n {
			b.Fatalf("read back %d ops (err %v), want %d", len(ops), err, n)
		}
		bare := bareApply(b, ops, cfg.MaxOps)

		b.StartTimer()
		start := time.Now()
		if err := u.Sync(ctx); err != nil {
			b.Fatalf("sync: %v", err)
		}
		took := time.Since(start)
		b.StopTimer()
		if s := u.State(); s.Backlog != 0 || s.Applied != int64(n) {
			b.Fatalf("after sync: backlog %d applied %d, want 0 and %d", s.Backlog, s.Applied, n)
		}
		j.Close()
		b.ReportMetric(took.Seconds(), "s-catch-up")
		b.ReportMetric(float64(n)/took.Seconds(), "ops/s")
		b.ReportMetric(bare.Seconds(), "s-bare-apply")
		b.ReportMetric(took.Seconds()/bare.Seconds(), "x-bare")
	}
}

func enrollForBench(b *testing.B, url, db, dir string) *enroll.State {
	b.Helper()
	var out, errOut syncBuffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	if code := m.Run(context.Background(), []string{"cloud", "enroll-code", "--db", db, "--store", "S1", "--terminal", "T1"}); code != 0 {
		b.Fatalf("enroll-code: %s", errOut.String())
	}
	if code := m.Run(context.Background(), []string{"enroll", "--cloud", url, "--code", strings.TrimSpace(out.String()), "--dir", dir}); code != 0 {
		b.Fatalf("enroll: %s", errOut.String())
	}
	st, err := enroll.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// fillJournal appends n earns over 500 cards with 8 appenders (group commit).
func fillJournal(b *testing.B, j *journal.Journal, n int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				var card loyalty.CardHash
				card[0], card[1] = 1, byte(i%500)
				card[2] = byte(i % 500 >> 8)
				if _, err := j.Append(context.Background(), loyalty.Op{Kind: loyalty.OpEarn, Card: card, Points: 10,
					Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "coffee", Quantity: 1, Amount: 1000}}}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("append: %v", err)
	}
}

// bareApply applies ops in batches of size straight to a fresh ledger.
func bareApply(b *testing.B, ops []loyalty.Op, size int) time.Duration {
	b.Helper()
	ctx := context.Background()
	l, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bare.db"), sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	now := time.Now()
	if err := l.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "BARE", Store: "S1", Terminal: ops[0].Terminal, Expires: now.Add(time.Hour), Created: now}); err != nil {
		b.Fatal(err)
	}
	if _, err := l.Enroll(ctx, "BARE", cloud.TerminalKey{PublicKey: make([]byte, 32), KeyID: "0000000000000000"}, now); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < len(ops); i += size {
		part := ops[i:min(i+size, len(ops))]
		hash := []byte(strconv.Itoa(i) + "-bench-batch-hash")
		if _, err := l.Apply(ctx, cloud.Batch{Terminal: part[0].Terminal, Epoch: part[0].Epoch, FirstSeq: part[0].Seq, LastSeq: part[len(part)-1].Seq,
			Hash: hash, Ops: part, ReceivedAt: now}); err != nil {
			b.Fatalf("bare apply: %v", err)
		}
	}
	return time.Since(start)
}
