package loyalty

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
)

// ErrSigningKey reports an Ed25519 public key that cannot be trusted to
// stand for a terminal (see CheckSigningKey).
var ErrSigningKey = errors.New("not an Ed25519 public key a signature can be trusted from")

// CheckSigningKey refuses an Ed25519 public key that no private key
// stands behind (ErrSigningKey): not 32 bytes, not a point of the curve,
// a non-canonical encoding, or a point of small order. ed25519.Verify
// accepts a signature under a small-order key (the identity point, say)
// for every message, so such a key, once enrolled or listed in a roster,
// would let anyone sign as its terminal. Every key a terminal is trusted
// by passes here first.
func CheckSigningKey(pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrSigningKey, len(pub), ed25519.PublicKeySize)
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return fmt.Errorf("%w: not a point of the curve", ErrSigningKey)
	}
	if !bytes.Equal(p.Bytes(), pub) {
		return fmt.Errorf("%w: a non-canonical encoding", ErrSigningKey)
	}
	if p.MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: a point of small order, under which any signature verifies", ErrSigningKey)
	}
	return nil
}
