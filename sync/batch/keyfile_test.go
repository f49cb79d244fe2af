package batch_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// copyKeyFixture copies testdata/keyfile/name into a temporary directory
// with mode 0600 (git keeps it 0644, which ReadPrivateKeyFile refuses).
func copyKeyFixture(t *testing.T, name string) (path string, data []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "keyfile", name))
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// Key files already on clouds and terminals keep loading, and a key is
// still written in the same bytes.
func TestKeyFilesWrittenBeforeStillLoadAndAreWrittenTheSame(t *testing.T) {
	for name, fingerprint := range map[string]string{"cloud.key": "da9829158984af9d", "terminal.key": "13e5d8da909cf793"} {
		t.Run(name, func(t *testing.T) {
			path, want := copyKeyFixture(t, name)
			key, err := batch.ReadPrivateKeyFile(path)
			if err != nil {
				t.Fatalf("ReadPrivateKeyFile: %v", err)
			}
			if got := batch.Fingerprint(key.Public().(ed25519.PublicKey)); got != fingerprint {
				t.Fatalf("loaded the key %s, want %s", got, fingerprint)
			}
			again := filepath.Join(t.TempDir(), name)
			if err := batch.WritePrivateKeyFile(again, key); err != nil {
				t.Fatalf("WritePrivateKeyFile: %v", err)
			}
			got, err := os.ReadFile(again)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("WritePrivateKeyFile wrote\n%s\nwant the bytes of the existing file\n%s", got, want)
			}
		})
	}
}

// A key file is made 0600 in a 0700 directory, never replaces a file, and
// leaves no temporary file behind.
func TestWritePrivateKeyFileIsPrivateAndNeverReplaces(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "keys", "k.key")
	if err := batch.WritePrivateKeyFile(path, key(1)); err != nil {
		t.Fatalf("WritePrivateKeyFile: %v", err)
	}
	for p, want := range map[string]fs.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	err := batch.WritePrivateKeyFile(path, key(2))
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second WritePrivateKeyFile error = %v, want fs.ErrExist", err)
	}
	got, err := batch.ReadPrivateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key(1)) {
		t.Errorf("the second write replaced the key")
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("key directory holds %d files, want only the key", len(entries))
	}
}

// The first call makes the key, later ones load it; a file that is not a
// key, or that others may read, is refused and left as it is.
func TestLoadOrCreatePrivateKeyFileNeverReplacesAKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.key")
	k1, created, err := batch.LoadOrCreatePrivateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first call: created %v, err %v; want a new key", created, err)
	}
	k2, created, err := batch.LoadOrCreatePrivateKeyFile(path)
	if err != nil || created || !k2.Equal(k1) {
		t.Fatalf("second call: created %v, err %v, same key %v; want the stored key", created, err, k2.Equal(k1))
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := batch.LoadOrCreatePrivateKeyFile(path); err == nil {
		t.Errorf("a key file the group can read was accepted")
	}
	garbage := []byte("not a key\n")
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := batch.LoadOrCreatePrivateKeyFile(path); !errors.Is(err, batch.ErrBadKeyFile) {
		t.Errorf("a file that is no key: error %v, want ErrBadKeyFile", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, garbage) {
		t.Errorf("the bad key file was replaced")
	}
}
