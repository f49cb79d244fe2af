package batch_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// strictCase is a signed batch payload that breaks one rule of strict
// decoding (invariant 6: malformed input never reaches the ledger), with
// the reason and the words of the error it must get.
type strictCase struct {
	name   string
	edit   func(t testing.TB, p []byte) []byte
	reason error
	detail string
}

// firstOpSeq is where the first op of the two-op payload of strictPayload
// spells its kind (earn) and sequence (1): "02 02 03 01".
var firstOpSeq = []byte{0x02, 0x02, 0x03, 0x01}

// splice replaces the first old in p by new; the test fails when p has no old.
func splice(t testing.TB, p, old, new []byte) []byte {
	t.Helper()
	i := bytes.Index(p, old)
	if i < 0 {
		t.Fatalf("payload has no % x", old)
	}
	return append(append(append([]byte{}, p[:i]...), new...), p[i+len(old):]...)
}

var strictCases = []strictCase{
	{"non-canonical integer in an op (seq 1 as 18 01)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, firstOpSeq, []byte{0x02, 0x02, 0x03, 0x18, 0x01})
	}, batch.ErrNotCanonical, "op seq: 1 is not in its shortest form"},
	{"non-canonical string length (store as 78 04)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte("\x64S-01"), []byte("\x78\x04S-01"))
	}, batch.ErrNotCanonical, "store: 4 is not in its shortest form"},
	{"unsorted map keys in the batch (last before first)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x03, 0x01, 0x04, 0x02}, []byte{0x04, 0x02, 0x03, 0x01})
	}, batch.ErrNotCanonical, "batch: field 3 after field 4 (keys must be sorted)"},
	{"unsorted map keys in an op (seq before kind)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, firstOpSeq, []byte{0x03, 0x01, 0x02, 0x02})
	}, batch.ErrNotCanonical, "op: field 2 after field 3 (keys must be sorted)"},
	{"indefinite-length ops array", func(t testing.TB, p []byte) []byte {
		return append(splice(t, p, []byte{0x07, 0x82}, []byte{0x07, 0x9f}), 0xff)
	}, batch.ErrMalformed, "ops: indefinite lengths are not accepted"},
	{"indefinite-length text (store in chunks)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte("\x64S-01"), []byte("\x7f\x62S-\x6201\xff"))
	}, batch.ErrMalformed, "store: indefinite lengths are not accepted"},
	{"tag on the wall time (tag 1, epoch time)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x05, 0x1b}, []byte{0x05, 0xc1, 0x1b})
	}, batch.ErrMalformed, "wall time: tags are not accepted"},
	{"tag on the whole payload", func(t testing.TB, p []byte) []byte {
		return append([]byte{0xd9, 0xd9, 0xf7}, p...)
	}, batch.ErrMalformed, "batch: tags are not accepted"},
	{"duplicate key in an op (seq twice)", func(t testing.TB, p []byte) []byte {
		// The first op's map head (0xac, 12 pairs) gains a pair: seq again.
		p = splice(t, p, firstOpSeq, []byte{0x02, 0x02, 0x03, 0x01, 0x03, 0x01})
		return splice(t, p, []byte{0x82, 0xac}, []byte{0x82, 0xad})
	}, batch.ErrMalformed, "op: duplicate field 3"},
	{"duplicate key in the batch (terminal twice)", func(t testing.TB, p []byte) []byte {
		return append([]byte{p[0] + 1, 0x01, 0x61, 'x'}, p[1:]...)
	}, batch.ErrMalformed, "batch: duplicate field 1"},
	{"unknown field in a basket line", func(t testing.TB, p []byte) []byte {
		// The BAG line, {1: "BAG", 3: 1, 4: 20}, gains field 5.
		return splice(t, p, []byte("\xa3\x01\x63BAG\x03\x01\x04\x14"), []byte("\xa4\x01\x63BAG\x03\x01\x04\x14\x05\x01"))
	}, batch.ErrMalformed, "basket line: unknown field 5"},
	{"all-zero card hash spelled out", func(t testing.TB, p []byte) []byte {
		i := bytes.Index(p, []byte{0x07, 0x58, 0x20})
		if i < 0 {
			t.Fatal("payload has no card")
		}
		p = bytes.Clone(p)
		clear(p[i+3 : i+3+32])
		return p
	}, batch.ErrNotCanonical, "card hash holds its zero value"},
	{"float where an integer belongs (points)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x09, 0x01}, []byte{0x09, 0xf9, 0x3c, 0x00})
	}, batch.ErrMalformed, "points: simple value or float, want an integer"},
	{"trailing byte", func(t testing.TB, p []byte) []byte {
		return append(bytes.Clone(p), 0x00)
	}, batch.ErrMalformed, "1 bytes after the batch"},
}

// strictPayload is the payload of a sealed two-op batch of T-01, epoch 1.
func strictPayload(t testing.TB, s *batch.Signer) []byte {
	t.Helper()
	sealed, err := s.SealBatch(newBatch("T-01", 1, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	env, err := batch.ParseEnvelope(sealed.Bytes, batch.MaxBatchBytes)
	if err != nil {
		t.Fatal(err)
	}
	return env.Payload()
}

// TestOpenBatchRefusesNonCanonicalAndMalformedPayloads: each way of
// breaking the strict decoding gets its own reason and says where, and
// fxamacker's strict decoding with the re-encoding check (the reference)
// refuses it too.
func TestOpenBatchRefusesNonCanonicalAndMalformedPayloads(t *testing.T) {
	s := signer(t, "T-01", 1)
	good := strictPayload(t, s)
	for _, tc := range strictCases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.edit(t, good)
			b, _, err := batch.OpenBatch(mustSealRaw(t, s, batch.TypeBatch, s.KeyID(1), p), program, s.Public())
			if !errors.Is(err, tc.reason) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("got %v, want %q saying %q", err, tc.reason, tc.detail)
			}
			if b != nil {
				t.Errorf("got a batch with the error")
			}
			// The reference refuses it too, or (the all-zero card) takes
			// it for a second encoding of a value SealBatch writes otherwise.
			if ref, err := batch.LibraryDecodeBatch(p); err == nil && bytes.Equal(batch.EncodeBatchPayload(ref), p) {
				t.Errorf("the reference decoder accepts it")
			}
		})
	}
}

// TestDecodersAgreeOnGoodPayloads: the hand-written decoder and the
// reference give the same batch for payloads of every op kind.
func TestDecodersAgreeOnGoodPayloads(t *testing.T) {
	s := signer(t, "T-01", 1)
	for _, n := range []int{1, 7, 50} {
		bt := newBatch("T-01", 1, 1, n)
		bt.Prev[0], bt.Prev[31] = 1, 2
		sealed, err := s.SealBatch(bt)
		if err != nil {
			t.Fatal(err)
		}
		env, err := batch.ParseEnvelope(sealed.Bytes, batch.MaxBatchBytes)
		if err != nil {
			t.Fatal(err)
		}
		checkDecodersAgree(t, env.Payload())
	}
}

// checkDecodersAgree holds the hand-written decoder to the reference on
// payload: what one accepts the other accepts, with the same batch. The
// one exception goes the strict way: the reference accepts a zero hash
// spelled out as 32 zero bytes, a second encoding of a value (SealBatch
// omits it), which the hand-written decoder refuses.
func checkDecodersAgree(t *testing.T, payload []byte) {
	t.Helper()
	got, err := batch.DecodeBatch(payload)
	want, werr := batch.LibraryDecodeBatch(payload)
	switch {
	case err != nil:
		var be *batch.Error
		if !errors.As(err, &be) || got != nil {
			t.Fatalf("got %T %v with batch %v; want a *batch.Error and no batch", err, err, got)
		}
		if !errors.Is(err, batch.ErrMalformed) && !errors.Is(err, batch.ErrNotCanonical) {
			t.Fatalf("got %v; a decoding error is malformed or not canonical", err)
		}
		if werr == nil && bytes.Equal(batch.EncodeBatchPayload(want), payload) {
			t.Fatalf("the hand-written decoder refuses a payload the reference accepts in its one encoding: %v", err)
		}
	case werr != nil:
		t.Fatalf("the hand-written decoder accepts a payload the reference refuses (%v)", werr)
	default:
		if !bytes.Equal(batch.EncodeBatchPayload(got), payload) {
			t.Fatalf("an accepted payload re-encodes to other bytes")
		}
		if got.Terminal != want.Terminal || got.Epoch != want.Epoch || got.First != want.First || got.Last != want.Last ||
			got.Prev != want.Prev || got.RulesVersion != want.RulesVersion || (got.Ops == nil) != (want.Ops == nil) ||
			!bytes.Equal(canonical(got.Ops), canonical(want.Ops)) {
			t.Fatalf("the decoders disagree:\n got %+v\nwant %+v", got, want)
		}
	}
}
