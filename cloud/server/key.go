package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// LoadOrCreateKey returns the cloud's Ed25519 signing key stored at path
// as a PKCS #8 PEM block, generating it on first start with file mode 0600
// (batch.LoadOrCreatePrivateKeyFile). It refuses a key file that group or
// others can read, as ssh does. created reports whether the key was
// generated now.
func LoadOrCreateKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, created, err = batch.LoadOrCreatePrivateKeyFile(path)
	if err != nil {
		return nil, false, cloudKeyError(err)
	}
	return key, created, nil
}

// LoadKey reads an Ed25519 private key written by LoadOrCreateKey.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	k, err := batch.ReadPrivateKeyFile(path)
	if err != nil {
		return nil, cloudKeyError(err)
	}
	return k, nil
}

// cloudKeyError says which key failed, and for a bad file what to do.
func cloudKeyError(err error) error {
	if errors.Is(err, batch.ErrBadKeyFile) {
		return fmt.Errorf("cloud signing %w; move it away to generate a new one", err)
	}
	return fmt.Errorf("cloud signing %w", err)
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
