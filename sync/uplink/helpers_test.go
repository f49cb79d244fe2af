package uplink_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

const program = "prog-test"

func newSigner(t testing.TB, name string) *batch.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := batch.NewSigner(name, program, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// earn returns the n-th earn of a test: card n%cards, points n%40+1.
func earn(n, cards int) loyalty.Op {
	id, err := loyalty.NewOpID(t0.Add(time.Duration(n)*time.Millisecond), rand.Reader)
	if err != nil {
		panic(err)
	}
	var card loyalty.CardHash
	binary.BigEndian.PutUint64(card[:], uint64(n%cards)+1)
	return loyalty.Op{
		ID: id, Kind: loyalty.OpEarn, Store: "S-01", WallTime: t0.Add(time.Duration(n) * time.Second),
		Card: card, Points: loyalty.Points(n%40 + 1), RulesVersion: 1,
		Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "4006381333931", Category: "dairy", Quantity: 1, Amount: int64(n%40+1) * 100}}},
	}
}

// mustUplink returns uplink.New(j, cfg), failing t if it refuses.
func mustUplink(t testing.TB, j uplink.Journal, cfg uplink.Config) *uplink.Uplink {
	t.Helper()
	u, err := uplink.New(j, cfg)
	if err != nil {
		t.Fatalf("new uplink: %v", err)
	}
	return u
}

// openJournal opens a real journal for terminal in a temporary directory.
func openJournal(t testing.TB, terminal string) *journal.Journal {
	t.Helper()
	return openJournalAt(t, filepath.Join(t.TempDir(), terminal+".db"), terminal)
}

func openJournalAt(t testing.TB, path, terminal string) *journal.Journal {
	t.Helper()
	return openJournalFrom(t, path, terminal, 0)
}

// openJournalFrom opens a real journal that writes from epoch minEpoch on,
// as the agent opens it with its enrollment's epoch.
func openJournalFrom(t testing.TB, path, terminal string, minEpoch uint32) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), path, journal.Options{Terminal: terminal, Store: "S-01", Logger: quietLogger(t), MinEpoch: minEpoch})
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// appendOps appends ops from several goroutines (the journal commits them
// in groups) and returns them as stored, in sequence order.
func appendOps(t testing.TB, j *journal.Journal, ops []loyalty.Op) []loyalty.Op {
	t.Helper()
	stored := make([]loyalty.Op, len(ops))
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				o, err := j.Append(context.Background(), ops[i])
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				stored[i] = o
			}
		}()
	}
	for i := range ops {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("append: %v", err)
	default:
	}
	slices.SortFunc(stored, func(a, b loyalty.Op) int { return cmp.Compare(a.Seq, b.Seq) })
	return stored
}

func earns(from, n, cards int) []loyalty.Op {
	ops := make([]loyalty.Op, n)
	for i := range ops {
		ops[i] = earn(from+i, cards)
	}
	return ops
}

// quietLogger discards logs unless -v.
func quietLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TILLPOINT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// serve runs h on a real listener on 127.0.0.1 and returns its URL.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// fastConfig is a Config with test-sized timings.
func fastConfig(url string, s *batch.Signer, cloud ed25519.PublicKey, t testing.TB) uplink.Config {
	cfg := uplink.DefaultConfig()
	cfg.URL, cfg.Signer, cfg.CloudKey = url, s, cloud
	cfg.MaxOps, cfg.MaxAge = 40, 0
	cfg.RequestTimeout = 2 * time.Second
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 20*time.Millisecond
	cfg.Poll = 10 * time.Millisecond
	cfg.Logger = quietLogger(t)
	return cfg
}
