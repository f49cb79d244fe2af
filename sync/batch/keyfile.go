package batch

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrBadKeyFile reports a key file that is not a PEM "PRIVATE KEY" block
// holding an Ed25519 key.
var ErrBadKeyFile = errors.New("not a PEM \"PRIVATE KEY\" block with an Ed25519 key")

// ReadPrivateKeyFile reads an Ed25519 private key stored as a PKCS #8 PEM
// block, as the cloud's signing key and a terminal's key are. It refuses a
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
	if block == nil || block.Type != "PRIVATE KEY" {
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
