package batch

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The on-disk form of a private key: the PEM block type around its PKCS #8
// DER, and the file and directory modes it is created with.
const (
	keyBlockType = "PRIVATE KEY"
	keyFileMode  = 0o600
	keyDirMode   = 0o700
)

// ErrBadKeyFile reports a key file that is not a PEM "PRIVATE KEY" block
// holding an Ed25519 key.
var ErrBadKeyFile = errors.New("not a PEM \"PRIVATE KEY\" block with an Ed25519 key")

// ReadPrivateKeyFile reads an Ed25519 private key stored as a PKCS #8 PEM
// block, as the cloud's signing key and a terminal's key are
// (WritePrivateKeyFile). It refuses a
// file that anyone but its owner may read. The caller adds what the
// operator should do about a bad file (ErrBadKeyFile).
func ReadPrivateKeyFile(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key %s has mode %v; others must not read it: run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 16<<10))
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != keyBlockType {
		return nil, fmt.Errorf("key %s: %w", path, ErrBadKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w: %w", path, ErrBadKeyFile, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s is a %T: %w", path, k, ErrBadKeyFile)
	}
	return ek, nil
}

// LoadOrCreatePrivateKeyFile returns the Ed25519 key stored at path
// (ReadPrivateKeyFile), generating and storing one (WritePrivateKeyFile)
// when there is no file; created reports whether it did. Any other failure
// to read is returned as it is: a bad key file is never replaced.
func LoadOrCreatePrivateKeyFile(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = ReadPrivateKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate key: %w", err)
	}
	if err := WritePrivateKeyFile(path, key); err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// WritePrivateKeyFile stores key at path as a PKCS #8 PEM "PRIVATE KEY"
// block in a new file of mode 0600, making its directory with mode 0700
// when there is none. It never replaces a file: if path exists, it fails
// with an error wrapping fs.ErrExist and leaves that file alone. The key is
// written and synced under a temporary name, then linked into place and its
// directory synced, so a crash never leaves half a key at path.
func WritePrivateKeyFile(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: keyBlockType, Bytes: der})
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, keyDirMode); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	tmp, err := writeSyncedTemp(dir, filepath.Base(path), data)
	if err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	defer os.Remove(tmp)
	// Link, not rename: if another process created the key meanwhile, keep theirs.
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("install key %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// writeSyncedTemp writes data to a new file of mode 0600 in dir, syncs it
// and returns its name; on failure it removes the file.
func writeSyncedTemp(dir, base string, data []byte) (name string, err error) {
	f, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	cerr := f.Chmod(keyFileMode)
	_, werr := f.Write(data)
	serr := f.Sync()
	if err := errors.Join(cerr, werr, serr, f.Close()); err != nil {
		return "", err
	}
	return f.Name(), nil
}
