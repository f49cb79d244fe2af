package server_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tillpoint/tillpoint/cloud/server"
)

func TestLoadOrCreateKeyGeneratesOnceWithMode0600(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys", "cloud.key")
	k1, created, err := server.LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKey: created %v, err %v; want a new key", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}
	k2, created, err := server.LoadOrCreateKey(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreateKey: created %v, err %v; want the stored key", created, err)
	}
	if !k1.Equal(k2) {
		t.Errorf("second start returned a different key; terminals pinned the first")
	}
}

func TestLoadKeyRefusesAKeyOthersCanRead(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cloud.key")
	if _, _, err := server.LoadOrCreateKey(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.LoadOrCreateKey(path); err == nil {
		t.Fatalf("LoadOrCreateKey accepted a group-readable key")
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.LoadOrCreateKey(path); err == nil {
		t.Fatalf("LoadOrCreateKey accepted garbage and would have served with it")
	}
}
