package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// LoadOrCreateKey returns the cloud's Ed25519 signing key stored at path
// as a PKCS #8 PEM block, generating it on first start with file mode 0600.
// It refuses a key file that group or others can read, as ssh does. created
// reports whether the key was generated now.
func LoadOrCreateKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = LoadKey(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate cloud signing key: %w", err)
	}
	if err := writeKey(path, key); err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// LoadKey reads an Ed25519 private key written by LoadOrCreateKey.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	k, err := batch.ReadPrivateKeyFile(path)
	if errors.Is(err, batch.ErrBadKeyFile) {
		return nil, fmt.Errorf("cloud signing %w; move it away to generate a new one", err)
	}
	if err != nil {
		return nil, fmt.Errorf("cloud signing %w", err)
	}
	return k, nil
}

// writeKey creates path exclusively with mode 0600 and syncs it and its
// directory, so a crash never leaves a half-written key behind a started server.
func writeKey(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("write signing key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close signing key: %w", err)
	}
	// Link, not rename: if another process created the key meanwhile, keep theirs.
	if err := os.Link(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install signing key %s: %w", path, err)
	}
	os.Remove(tmp)
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// CardKeySize is the size of a card key LoadOrCreateCardKey generates.
const CardKeySize = 32

// LoadOrCreateCardKey returns the program's card hash key stored at path
// (64 hex digits, or 32 raw bytes as 'tillpoint agent' also reads), made
// on first start with mode 0600. The key is a secret: the cloud hands it
// only to enrolled terminals, sealed to them; it refuses a file group or
// others can read.
func LoadOrCreateCardKey(path string) (key []byte, created bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		key = make([]byte, CardKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, false, fmt.Errorf("generate the card key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("create card key directory: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("create the card key: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
		serr := f.Sync()
		if cerr := f.Close(); werr != nil || serr != nil || cerr != nil {
			os.Remove(path)
			return nil, false, fmt.Errorf("write the card key %s: %w", path, errors.Join(werr, serr, cerr))
		}
		return key, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("card key: %w", err)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, false, fmt.Errorf("card key %s has mode %04o: others can read the program's card key; run 'chmod 600 %s'", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("card key: %w", err)
	}
	if h, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(h) == CardKeySize {
		return h, false, nil
	}
	if len(b) == CardKeySize {
		return b, false, nil
	}
	return nil, false, fmt.Errorf("card key %s: want 64 hex digits or %d raw bytes; restore it from backup (every card hash depends on it)", path, CardKeySize)
}
