package uplink

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// cutFixture is an uplink over a real journal whose cloud is never called:
// these tests look at how batches are cut, not at how they are sent.
type cutFixture struct {
	j     *journal.Journal
	u     *Uplink
	now   time.Time
	term  *batch.Signer
	cloud ed25519.PublicKey
}

func newCutFixture(t *testing.T, cfg Config) *cutFixture {
	t.Helper()
	f := &cutFixture{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	j, err := journal.Open(context.Background(), filepath.Join(t.TempDir(), "j.db"),
		journal.Options{Terminal: "T-01", Store: "S-01", Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.term, err = batch.NewSigner("T-01", "prog", priv)
	if err != nil {
		t.Fatal(err)
	}
	f.cloud, _, _ = ed25519.GenerateKey(rand.Reader)
	cfg.URL, cfg.Signer, cfg.CloudKey = "http://127.0.0.1:1", f.term, f.cloud
	cfg.Now = func() time.Time { return f.now }
	cfg.Logger = slog.New(slog.DiscardHandler)
	if f.u, err = New(j, cfg); err != nil {
		t.Fatal(err)
	}
	f.j = j
	return f
}

func (f *cutFixture) append(t *testing.T, n int, lines int) {
	t.Helper()
	for i := range n {
		b := &loyalty.Basket{Currency: "EUR"}
		for l := range lines {
			b.Lines = append(b.Lines, loyalty.Line{SKU: "SKU-0000000000000000000000000000" + string(rune('A'+l%26)), Quantity: 1, Amount: 100})
		}
		var card loyalty.CardHash
		card[0] = byte(i + 1)
		if _, err := f.j.Append(context.Background(), loyalty.Op{Kind: loyalty.OpEarn, Card: card, Points: loyalty.Points(lines), Basket: b, RulesVersion: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// cut runs one cut and returns the batch's range, or ok=false with the wait.
func (f *cutFixture) cut(t *testing.T, force bool) (epoch uint32, first, last uint64, wait time.Duration, ok bool) {
	t.Helper()
	sb, wait, ok, err := f.u.cut(context.Background(), force)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return 0, 0, 0, wait, false
	}
	b, _, err := batch.OpenBatch(sb.Payload, "prog", f.term.Public())
	if err != nil {
		t.Fatalf("the cut batch does not open: %v", err)
	}
	if b.Epoch != sb.Epoch || b.First != sb.FirstSeq || b.Last != sb.LastSeq {
		t.Fatalf("outbox entry %d/%d..%d holds batch %d/%d..%d", sb.Epoch, sb.FirstSeq, sb.LastSeq, b.Epoch, b.First, b.Last)
	}
	// Pretend the cloud acknowledged it, so the next cut follows it.
	if err := f.j.MarkAcked(context.Background(), sb.Epoch, sb.LastSeq); err != nil {
		t.Fatal(err)
	}
	return sb.Epoch, sb.FirstSeq, sb.LastSeq, 0, true
}

func TestCutByCount(t *testing.T) {
	f := newCutFixture(t, Config{MaxOps: 10, MaxAge: time.Hour})
	f.append(t, 25, 1)
	for _, want := range [][2]uint64{{1, 10}, {11, 20}} {
		if _, first, last, _, ok := f.cut(t, false); !ok || first != want[0] || last != want[1] {
			t.Fatalf("cut: got %d..%d (ok %v), want %d..%d", first, last, ok, want[0], want[1])
		}
	}
	// 5 left, younger than MaxAge: not yet.
	if _, _, _, wait, ok := f.cut(t, false); ok || wait != time.Hour {
		t.Fatalf("partial batch: got ok %v wait %v, want a wait of 1h", ok, wait)
	}
}

func TestCutByAge(t *testing.T) {
	f := newCutFixture(t, Config{MaxOps: 100, MaxAge: time.Minute})
	f.append(t, 5, 1)
	if _, _, _, wait, ok := f.cut(t, false); ok || wait != time.Minute {
		t.Fatalf("fresh partial batch: got ok %v wait %v, want a wait of 1m", ok, wait)
	}
	f.now = f.now.Add(40 * time.Second)
	if _, _, _, wait, ok := f.cut(t, false); ok || wait != 20*time.Second {
		t.Fatalf("after 40s: got ok %v wait %v, want a wait of 20s", ok, wait)
	}
	f.now = f.now.Add(20 * time.Second)
	if _, first, last, _, ok := f.cut(t, false); !ok || first != 1 || last != 5 {
		t.Fatalf("after 1m: got %d..%d (ok %v), want 1..5", first, last, ok)
	}
}

func TestCutForcedIgnoresAge(t *testing.T) {
	f := newCutFixture(t, Config{MaxOps: 100, MaxAge: time.Hour})
	f.append(t, 3, 1)
	if _, first, last, _, ok := f.cut(t, true); !ok || first != 1 || last != 3 {
		t.Fatalf("forced cut: got %d..%d (ok %v), want 1..3", first, last, ok)
	}
}

func TestCutByBytes(t *testing.T) {
	f := newCutFixture(t, Config{MaxOps: 100, MaxBytes: 4000, MaxAge: time.Hour})
	f.append(t, 10, 20) // about 1,000 bytes of canonical encoding each
	var op loyalty.Op
	ops, _ := f.j.OpsAfter(context.Background(), 0, 0, 1)
	op = ops[0]
	per := len(op.AppendCanonical(nil))
	_, first, last, _, ok := f.cut(t, false)
	if !ok || first != 1 || int(last)*per > 4000 || int(last+1)*per <= 4000 {
		t.Fatalf("cut by bytes (%d bytes an op, at most 4000): got %d..%d (ok %v)", per, first, last, ok)
	}
}

func TestCutStopsAtEpochBoundary(t *testing.T) {
	f := newCutFixture(t, Config{MaxOps: 100, MaxAge: time.Hour})
	f.append(t, 4, 1)
	moved, err := f.j.NewEpoch(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	f.append(t, 3, 1)
	if e, first, last, _, ok := f.cut(t, false); !ok || e != 1 || first != 1 || last != 4 {
		t.Fatalf("first cut: got %d/%d..%d (ok %v), want 1/1..4 at once (the epoch ended)", e, first, last, ok)
	}
	// Before the new epoch, the old one's last op goes again alone, at
	// once: the cloud confirms it still holds the old epoch's end.
	if e, first, last, _, ok := f.cut(t, false); !ok || e != 1 || first != 4 || last != 4 {
		t.Fatalf("second cut: got %d/%d..%d (ok %v), want the probe 1/4..4 at once", e, first, last, ok)
	}
	f.u.mu.Lock()
	f.u.crossed = position{1, 4, true} // as the probe's ack does
	f.u.mu.Unlock()
	if e, first, last, _, ok := f.cut(t, true); !ok || e != moved || first != 1 || last != 3 {
		t.Fatalf("third cut: got %d/%d..%d (ok %v), want %d/1..3", e, first, last, ok, moved)
	}
}
