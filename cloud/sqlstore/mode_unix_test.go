//go:build unix

package sqlstore_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
)

// TestNewLedgerIsReadableByItsOwnerOnly: the SQLite ledger holds the
// stores' gossip keys, so it and its -wal and -shm files are made 0600
// whatever the umask lets through, as a backup of it is.
func TestNewLedgerIsReadableByItsOwnerOnly(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o022)) // the usual umask; not parallel
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	s, err := sqlstore.Open(context.Background(), "sqlite:"+path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PublishRules(context.Background(), storetest.TestRules(1), storetest.Start()); err != nil { // a write: the WAL
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, e.Name())
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %04o: other users of the machine read the stores' gossip keys from it", e.Name(), fi.Mode().Perm())
		}
	}
	if len(seen) < 2 {
		t.Fatalf("files of the ledger: %v, want the database and its WAL at least", seen)
	}
}
