package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/sync/uplink"
)

// TestRestoredCloudGetsWhatItsBackupLacksFromTheTills defends "nothing
// lost" through the loss of the cloud's disk: a backup made while the
// cloud serves, restored after the till shipped more, gets those ops
// again from the till (its next batch meets the restored watermark, and
// it re-seals from there), each exactly once.
func TestRestoredCloudGetsWhatItsBackupLacksFromTheTills(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "ledger.db")
	db := "sqlite:" + dbPath
	cl := startCloud(t, nil, "--db", db)
	st, j := enrollWithJournal(t, cl, db, filepath.Join(dir, "terminal"))
	ship := func(url string) uplink.State {
		t.Helper()
		u := newTestUplink(t, j, st, url)
		if err := u.Sync(ctx); err != nil {
			t.Fatalf("sync: %v (state %+v)", err, u.State())
		}
		return u.State()
	}

	epoch := appendEarns(t, j, 250)
	ship(cl.url)
	backup := filepath.Join(dir, "backup.db")
	if code, out, errOut := run(t, "cloud", "backup", "--db", db, "--to", backup); code != 0 || !strings.Contains(out, "backed up the ledger to "+backup) {
		t.Fatalf("cloud backup beside the running cloud: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := run(t, "cloud", "backup", "--db", db, "--to", backup); code != 1 || !strings.Contains(errOut, "never overwrite") {
		t.Errorf("a second backup to the same file: exit %d, %q; want 1 and a refusal", code, errOut)
	}
	appendEarns(t, j, 100)
	ship(cl.url)
	cl.stop()

	// The disk is lost; the backup and the keys are what is left.
	for _, f := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if err := os.Rename(backup, dbPath); err != nil {
		t.Fatal(err)
	}
	restored := startCloud(t, nil, "--db", db)
	appendEarns(t, j, 10)
	s := ship(restored.url)
	if s.Gaps != 1 || s.Applied != 110 || s.Backlog != 0 {
		t.Errorf("till after the restore: %d gaps, %d applied, backlog %d; want 1 gap and the 100 ops the backup lacked with the 10 new applied", s.Gaps, s.Applied, s.Backlog)
	}
	restored.stop()
	wantEachOpOnce(t, db, st.Terminal, epoch, 360, "restored from the backup")
}
