package batch_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tillpoint/tillpoint/sync/batch"
)

func TestSealOpenBatchRoundTrip(t *testing.T) {
	s := signer(t, "T-01", 1)
	b := newBatch("T-01", 2, 101, 50)
	b.Prev[0] = 0xaa
	sealed, err := s.SealBatch(b)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	got, h, err := batch.OpenBatch(sealed.Bytes, program, s.Public())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if h != sealed.Hash {
		t.Errorf("hash: got %s, want %s", h, sealed.Hash)
	}
	if got.Terminal != b.Terminal || got.Epoch != b.Epoch || got.First != b.First || got.Last != b.Last || got.Prev != b.Prev || got.RulesVersion != b.RulesVersion {
		t.Errorf("header: got %+v, want %+v", *got, *b)
	}
	if !bytes.Equal(canonical(got.Ops), canonical(b.Ops)) {
		t.Errorf("ops differ after a round trip")
	}
	if hh, err := batch.HashOf(sealed.Bytes); err != nil || hh != sealed.Hash {
		t.Errorf("HashOf: got %s, %v, want %s", hh, err, sealed.Hash)
	}
}

// A retry must send the identical bytes: sealing the same batch twice gives
// the same bytes and the same hash.
func TestSealIsDeterministic(t *testing.T) {
	s := signer(t, "T-01", 1)
	a, err := s.SealBatch(newBatch("T-01", 1, 1, 20))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.SealBatch(newBatch("T-01", 1, 1, 20))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes, b.Bytes) || a.Hash != b.Hash {
		t.Errorf("two seals of one batch differ: %d vs %d bytes", len(a.Bytes), len(b.Bytes))
	}
}

func TestOpenBatchRejects(t *testing.T) {
	s := signer(t, "T-01", 1)
	other := signer(t, "T-02", 2)
	good, err := s.SealBatch(newBatch("T-01", 1, 1, 5))
	if err != nil {
		t.Fatal(err)
	}
	env, err := batch.ParseEnvelope(good.Bytes, batch.MaxBatchBytes)
	if err != nil {
		t.Fatal(err)
	}
	payload := env.Payload()
	resign := func(p []byte) []byte {
		b, err := s.SealRaw(batch.TypeBatch, s.KeyID(1), p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good.Bytes)
		b[i] ^= 0x01
		return b
	}
	opsOf := func(m map[any]any) []any { return m[uint64(7)].([]any) }

	for _, tc := range []struct {
		name string
		data []byte
		pub  []byte
		prog string
		want error
	}{
		{"forged signature", flip(len(good.Bytes) - 1), nil, "", batch.ErrSignature},
		{"payload changed after signing", flip(len(good.Bytes) - 80), nil, "", batch.ErrSignature},
		{"another terminal's key", good.Bytes, other.Public(), "", batch.ErrSignature},
		{"another program", good.Bytes, nil, "prog-other", batch.ErrSignature},
		{"too large", append(bytes.Clone(good.Bytes), make([]byte, batch.MaxBatchBytes)...), nil, "", batch.ErrTooLarge},
		{"truncated", good.Bytes[:len(good.Bytes)/2], nil, "", batch.ErrMalformed},
		{"empty", nil, nil, "", batch.ErrMalformed},
		{"not cbor", []byte("POST /v1/batches HTTP/1.1"), nil, "", batch.ErrMalformed},
		{"untagged cose", good.Bytes[1:], nil, "", batch.ErrMalformed},
		{"trailing bytes", append(bytes.Clone(good.Bytes), 0x00), nil, "", batch.ErrMalformed},
		{"an ack where a batch belongs", mustSealRaw(t, s, batch.TypeAck, s.KeyID(1), payload), nil, "", batch.ErrContentType},
		{"kid of another terminal", mustSealRaw(t, other, batch.TypeBatch, other.KeyID(1), payload), other.Public(), "", batch.ErrKeyMismatch},
		{"kid of another epoch", mustSealRaw(t, s, batch.TypeBatch, s.KeyID(9), payload), nil, "", batch.ErrKeyMismatch},
		// PostgreSQL refuses a NUL in text: it must not reach the
		// terminal's lookup as a database error (a 500).
		{"NUL in the kid's signer", mustSealRaw(t, s, batch.TypeBatch, batch.KeyID{Signer: "T\x0001", Key: s.KeyID(1).Key, Epoch: 1}, payload), nil, "", batch.ErrHeader},
		{"non-canonical payload (long int)", resign(append([]byte{payload[0], 0x18, 0x01}, payload[2:]...)), nil, "", batch.ErrNotCanonical},
		{"duplicate map key", resign(append([]byte{payload[0] + 1, 0x01, 0x61, 'x'}, payload[1:]...)), nil, "", batch.ErrMalformed},
		{"indefinite length", resign(append(append([]byte{0xbf}, payload[1:]...), 0xff)), nil, "", batch.ErrMalformed},
		{"tagged payload", resign(append([]byte{0xc1}, payload...)), nil, "", batch.ErrMalformed},
		{"unknown field", resign(tamper(t, payload, func(m map[any]any) { m[uint64(99)] = uint64(1) })), nil, "", batch.ErrMalformed},
		{"zero spelled out", resign(tamper(t, payload, func(m map[any]any) { m[uint64(6)] = uint64(0) })), nil, "", batch.ErrNotCanonical},
		{"sequence gap inside", resign(tamper(t, payload, func(m map[any]any) { opsOf(m)[2].(map[any]any)[uint64(3)] = uint64(7) })), nil, "", batch.ErrInvalid},
		{"range does not match ops", resign(tamper(t, payload, func(m map[any]any) { m[uint64(4)] = uint64(9) })), nil, "", batch.ErrInvalid},
		{"repeated op id", resign(tamper(t, payload, func(m map[any]any) { opsOf(m)[1].(map[any]any)[uint64(1)] = opsOf(m)[0].(map[any]any)[uint64(1)] })), nil, "", batch.ErrInvalid},
		{"short op id", resign(tamper(t, payload, func(m map[any]any) { opsOf(m)[1].(map[any]any)[uint64(1)] = []byte{1, 2, 3} })), nil, "", batch.ErrMalformed},
		{"wrong type", resign(tamper(t, payload, func(m map[any]any) { m[uint64(3)] = "one" })), nil, "", batch.ErrMalformed},
		{"uint32 overflow", resign(tamper(t, payload, func(m map[any]any) { m[uint64(6)] = uint64(1) << 40 })), nil, "", batch.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, prog := s.Public(), program
			if tc.pub != nil {
				pub = tc.pub
			}
			if tc.prog != "" {
				prog = tc.prog
			}
			b, _, err := batch.OpenBatch(tc.data, prog, pub)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want an error wrapping %q", err, tc.want)
			}
			if b != nil {
				t.Errorf("got a batch with the error %v", err)
			}
			var be *batch.Error
			if !errors.As(err, &be) {
				t.Errorf("got %T, want *batch.Error", err)
			}
		})
	}
}

func mustSealRaw(t *testing.T, s *batch.Signer, ct string, kid batch.KeyID, payload []byte) []byte {
	t.Helper()
	b, err := s.SealRaw(ct, kid, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
