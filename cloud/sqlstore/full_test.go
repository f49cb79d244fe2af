package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
)

// TestFullStorageRefusesTheBatchAndLosesNothing defends "nothing lost" when
// the ledger's database has no room: the batch is refused as
// cloud.ErrStorageFull (which the server answers with a 503 the till
// retries), nothing of it is written, Ping says the storage is full, and
// once there is room the same batch applies exactly once. SQLite's
// max_page_count on the one writer connection stands in for a full disk
// (cmd/tillpoint's TestCloudOnAFullDisk fills a real one).
func TestFullStorageRefusesTheBatchAndLosesNothing(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenSQLite(t, sqlstore.Options{})
	if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatal(err)
	}
	tl := storetest.NewTill(t, s, "t1", "s1")
	tl.Send(t, s, tl.Earn(storetest.Card(1), 1000, 10))

	var pages int64
	if err := s.DB().QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	b := tl.Seal(tl.Earn(storetest.Card(2), 1000, 10), tl.Earn(storetest.Card(3), 2000, 20))
	// The WAL may hold a small transaction in pages it already has; a
	// batch that needs new pages in the database file cannot commit once
	// the checkpoint must grow the file. Send batches until one is refused.
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		if _, err = s.Apply(ctx, b); err == nil {
			b = tl.Seal(tl.Earn(storetest.Card(4+i), 100000, 1000))
		}
	}
	if !errors.Is(err, cloud.ErrStorageFull) {
		t.Fatalf("Apply with no room: %v, want cloud.ErrStorageFull", err)
	}
	wm, _, werr := s.Watermark(ctx, "t1", b.Epoch)
	if werr != nil || wm != b.FirstSeq-1 {
		t.Fatalf("watermark after the refused batch %d..%d: %d (%v); want %d: nothing of it applied", b.FirstSeq, b.LastSeq, wm, werr, b.FirstSeq-1)
	}
	if err := s.Ping(ctx); !errors.Is(err, cloud.ErrStorageFull) {
		t.Errorf("Ping after a write found no room: %v, want cloud.ErrStorageFull", err)
	}

	if _, err := s.DB().ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	a, err := s.Apply(ctx, b)
	if err != nil || a.Watermark != b.LastSeq || a.Replay {
		t.Fatalf("the refused batch once there is room: watermark %d, replay %v, %v; want it applied", a.Watermark, a.Replay, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after a write succeeded again: %v", err)
	}
}
