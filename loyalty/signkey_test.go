package loyalty_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/tillpoint/tillpoint/loyalty"
)

// TestCheckSigningKeyRefusesKeysAnyoneCanSignFor defends invariant 6: a
// public key of small order has no private key behind it, and the
// signature below verifies under the identity point for every message, so
// such a key must never be trusted for a terminal.
func TestCheckSigningKeyRefusesKeysAnyoneCanSignFor(t *testing.T) {
	identity := make([]byte, 32)
	identity[0] = 1
	universal, _ := hex.DecodeString("5866666666666666666666666666666666666666666666666666666666666666" +
		"0100000000000000000000000000000000000000000000000000000000000000")
	if !ed25519.Verify(identity, []byte("any message at all"), universal) {
		t.Fatal("the universal signature does not verify under the identity point: the test is void")
	}
	orderTwo := make([]byte, 32) // (0, -1): y = p-1 = 2^255-20
	orderTwo[0] = 0xec
	for i := 1; i < 31; i++ {
		orderTwo[i] = 0xff
	}
	orderTwo[31] = 0x7f
	nonCanonical := make([]byte, 32) // y = p+1, the identity's other encoding
	nonCanonical[0] = 0xee
	for i := 1; i < 31; i++ {
		nonCanonical[i] = 0xff
	}
	nonCanonical[31] = 0x7f
	offCurve, _ := hex.DecodeString("0200000000000000000000000000000000000000000000000000000000000000")
	for name, key := range map[string][]byte{
		"identity":         identity,
		"order two":        orderTwo,
		"non-canonical":    nonCanonical,
		"not on the curve": offCurve,
		"short":            identity[:31],
		"empty":            nil,
	} {
		if err := loyalty.CheckSigningKey(key); !errors.Is(err, loyalty.ErrSigningKey) {
			t.Errorf("%s key %x: got %v, want ErrSigningKey", name, key, err)
		}
	}
	for range 64 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := loyalty.CheckSigningKey(pub); err != nil {
			t.Fatalf("a generated key %x refused: %v", []byte(pub), err)
		}
	}
}
