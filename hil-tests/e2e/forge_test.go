package e2e_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// coseSign1 is a COSE_Sign1 as the batch package writes it (after tag 18).
type coseSign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[int64]cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

type protectedHeader struct {
	Alg         int64  `cbor:"1,keyasint"`
	ContentType string `cbor:"3,keyasint"`
	KID         []byte `cbor:"4,keyasint"`
}

type wireKID struct {
	_      struct{} `cbor:",toarray"`
	Signer string
	Key    string
	Epoch  uint32
}

// forge re-signs the payload of sealed with key under a kid of the
// attacker's choosing, in the exact canonical layout the cloud accepts, so
// that only the identity check can refuse it. payload, when not nil,
// replaces the sealed payload.
func forge(t *testing.T, sealed []byte, kid batch.KeyID, key ed25519.PrivateKey, program string, payload []byte) []byte {
	t.Helper()
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	var msg coseSign1
	if err := cbor.Unmarshal(sealed[1:], &msg); err != nil {
		t.Fatalf("forge: parse sealed message: %v", err)
	}
	var h protectedHeader
	if err := cbor.Unmarshal(msg.Protected, &h); err != nil {
		t.Fatalf("forge: parse protected header: %v", err)
	}
	if h.KID, err = em.Marshal(wireKID{Signer: kid.Signer, Key: kid.Key, Epoch: kid.Epoch}); err != nil {
		t.Fatal(err)
	}
	if msg.Protected, err = em.Marshal(h); err != nil {
		t.Fatal(err)
	}
	if payload != nil {
		msg.Payload = payload
	}
	toSign, err := em.Marshal([]any{"Signature1", msg.Protected, batch.AAD(program), msg.Payload})
	if err != nil {
		t.Fatal(err)
	}
	msg.Signature = ed25519.Sign(key, toSign)
	msg.Unprotected = map[int64]cbor.RawMessage{}
	out, err := em.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0xd2}, out...)
}

// payloadOf returns the payload of a sealed message.
func payloadOf(t *testing.T, sealed []byte) []byte {
	t.Helper()
	var msg coseSign1
	if err := cbor.Unmarshal(sealed[1:], &msg); err != nil {
		t.Fatalf("parse sealed message: %v", err)
	}
	return msg.Payload
}
