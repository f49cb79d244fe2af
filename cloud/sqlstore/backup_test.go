package sqlstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/internal/testdisk"
	"github.com/tillpoint/tillpoint/loyalty"
)

// TestBackupIsAConsistentLedgerAndNeverOverwrites: a backup taken while
// batches are applied opens as a ledger that balances, holds a whole
// number of batches, is readable by its owner only, and a second backup
// to the same name is refused without touching the first.
func TestBackupIsAConsistentLedgerAndNeverOverwrites(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenSQLite(t, sqlstore.Options{})
	tl := storetest.NewTill(t, s, "t1", "s1")
	batches := make([]cloud.Batch, 40)
	for i := range batches {
		batches[i] = tl.Seal(tl.Earn(storetest.Card(i%9), 1000, 10), tl.Earn(storetest.Card(i%7), 1000, 10))
	}
	done := make(chan error, 1)
	go func() {
		for _, bt := range batches {
			if _, err := s.Apply(ctx, bt); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := s.BackupTo(ctx, path); err != nil {
		t.Fatalf("backup while applying: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("apply beside the backup: %v", err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", st, err)
	}
	b, err := sqlstore.Open(ctx, "sqlite:"+path, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	defer b.Close()
	rep, err := b.Check(ctx)
	if err != nil {
		t.Fatalf("check the backup: %v %q", err, rep.Problems)
	}
	wm, _, err := b.Watermark(ctx, "t1", 1)
	if err != nil || wm%2 != 0 || int64(rep.Liability) != int64(wm)*10 {
		t.Errorf("backup: watermark %d (%v), liability %d; want whole batches of two ops, 10 points each", wm, err, rep.Liability)
	}

	before, _ := os.ReadFile(path)
	if err := s.BackupTo(ctx, path); !errors.Is(err, sqlstore.ErrBackupExists) {
		t.Errorf("backup onto an existing file: %v, want ErrBackupExists", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Errorf("a refused backup changed the existing file")
	}
}

func TestBackupOfPostgresPointsToItsTools(t *testing.T) {
	s := storetest.OpenPostgres(t, sqlstore.Options{})
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := s.BackupTo(context.Background(), path); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("backup of a PostgreSQL ledger: %v, want ErrInvalidInput naming pg_dump", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused backup left a file: %v", err)
	}
}

// TestBackupToAFullDiskLeavesNoPartialCopy: a backup that runs out of room
// fails naming its target, and leaves no file that could be mistaken for a
// backup and restored. A real full file system: a tmpfs, as root.
func TestBackupToAFullDiskLeavesNoPartialCopy(t *testing.T) {
	disk := testdisk.Tmpfs(t, "size=256k", "no other test")
	ctx := context.Background()
	s := storetest.OpenSQLite(t, sqlstore.Options{})
	tl := storetest.NewTill(t, s, "t1", "s1")
	for i := range 20 {
		var ops []loyalty.Op
		for j := range 200 {
			ops = append(ops, tl.Earn(storetest.Card(i*200+j), 1000, 10))
		}
		tl.Send(t, s, ops...)
	}
	path := filepath.Join(disk, "backup.db")
	err := s.BackupTo(ctx, path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("backup of a ledger larger than the disk: %v; want an error naming %s", err, path)
	}
	if _, serr := os.Stat(path); !os.IsNotExist(serr) {
		t.Errorf("a failed backup left %s behind (%v)", path, serr)
	}
	t.Logf("backup to a full disk: %v", err)
}
