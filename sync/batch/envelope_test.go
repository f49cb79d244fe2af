package batch_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/veraison/go-cose"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// The verifier accepts EdDSA only, and only the header this package writes:
// a message made by another COSE implementation with other choices is
// refused with the error that names the choice.
func TestParseEnvelopeRefusesOtherCOSE(t *testing.T) {
	s := signer(t, "T-01", 1)
	good, err := s.SealBatch(newBatch("T-01", 1, 1, 3))
	if err != nil {
		t.Fatal(err)
	}
	env, err := batch.ParseEnvelope(good.Bytes, batch.MaxBatchBytes)
	if err != nil {
		t.Fatal(err)
	}
	payload, kid := env.Payload(), s.KeyID(1).Bytes()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es256, err := cose.NewSigner(cose.AlgorithmES256, ec)
	if err != nil {
		t.Fatal(err)
	}
	// ES512's signatures are 132 bytes: it must still get ErrAlgorithm,
	// not a complaint about an Ed25519 signature's length.
	ec521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es512, err := cose.NewSigner(cose.AlgorithmES512, ec521)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := cose.NewSigner(cose.AlgorithmEdDSA, key(1))
	if err != nil {
		t.Fatal(err)
	}
	headers := func(alg cose.Algorithm, extra map[any]any, unprotected map[any]any) cose.Headers {
		p := cose.ProtectedHeader{cose.HeaderLabelAlgorithm: alg, cose.HeaderLabelContentType: batch.TypeBatch, cose.HeaderLabelKeyID: kid}
		for k, v := range extra {
			p[k] = v
		}
		return cose.Headers{Protected: p, Unprotected: unprotected}
	}
	sign := func(signer cose.Signer, h cose.Headers) []byte {
		b, err := cose.Sign1(rand.Reader, signer, h, payload, batch.AAD(program))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// go-cose with our choices writes our bytes: the envelope is standard.
	if same := sign(ed, headers(cose.AlgorithmEdDSA, nil, nil)); !bytes.Equal(same, good.Bytes) {
		t.Fatalf("go-cose's own encoding of our message differs from SealBatch's")
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"ES256", sign(es256, headers(cose.AlgorithmES256, nil, nil)), batch.ErrAlgorithm},
		{"ES512", sign(es512, headers(cose.AlgorithmES512, nil, nil)), batch.ErrAlgorithm},
		{"critical header", sign(ed, headers(cose.AlgorithmEdDSA, map[any]any{cose.HeaderLabelCritical: []any{int64(99)}, int64(99): "x"}, nil)), batch.ErrHeader},
		{"unprotected header", sign(ed, headers(cose.AlgorithmEdDSA, nil, map[any]any{cose.HeaderLabelKeyID: []byte("other")})), batch.ErrHeader},
		{"kid not ours", func() []byte {
			h := headers(cose.AlgorithmEdDSA, nil, nil)
			h.Protected[cose.HeaderLabelKeyID] = []byte("T-01")
			return sign(ed, h)
		}(), batch.ErrHeader},
		{"no content type", func() []byte {
			h := headers(cose.AlgorithmEdDSA, nil, nil)
			delete(h.Protected, cose.HeaderLabelContentType)
			return sign(ed, h)
		}(), batch.ErrHeader},
		{"long length head", func() []byte {
			// the signature's length (0x58 0x40) written in two bytes instead of one
			i := len(good.Bytes) - 64 - 2
			return append(append(bytes.Clone(good.Bytes[:i]), 0x59, 0x00, 0x40), good.Bytes[i+2:]...)
		}(), batch.ErrNotCanonical},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := batch.OpenBatch(tc.data, program, s.Public())
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want an error wrapping %q", err, tc.want)
			}
		})
	}
}

func TestCheckMediaType(t *testing.T) {
	for v, ok := range map[string]bool{
		batch.ContentType:                          true,
		`application/cose; cose-type=cose-sign1`:   true,
		`Application/COSE; cose-type="cose-sign1"`: true,
		`application/cose`:                         false,
		`application/cose; cose-type="cose-sign"`:  false,
		`application/cbor`:                         false,
		``:                                         false,
	} {
		if err := batch.CheckMediaType(v); (err == nil) != ok {
			t.Errorf("CheckMediaType(%q): got %v, want ok=%v", v, err, ok)
		}
	}
}
