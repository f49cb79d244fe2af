package sqlstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// TestWALIsCheckpointedInTheBackground: the pages batches write reach the
// database file without any batch running the checkpoint itself (the
// writer's own threshold is far above what these batches write), so that
// no batch pays for the others' checkpoint and the WAL stays short.
func TestWALIsCheckpointedInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlstore.Open(ctx, "sqlite:"+path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Let the checkpoint of the migrations pass first.
	time.Sleep(time.Second)
	before := size()
	tl := storetest.NewTill(t, s, "t1", "s1")
	for b := 0; b < 3; b++ {
		var ops []loyalty.Op
		for i := range 200 {
			ops = append(ops, tl.Earn(storetest.Card(i), 1000, 10))
		}
		if _, err := s.Apply(ctx, tl.Seal(ops...)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for size() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes 10s after the batches: their pages stayed in the WAL", before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	storetest.AssertConserved(t, s)
}
