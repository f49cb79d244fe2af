package batch_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// ackPayload is the payload of the sealed sampleAck.
func ackPayload(t testing.TB, cloud *batch.Signer) []byte {
	t.Helper()
	sealed, err := cloud.SealAck(sampleAck())
	if err != nil {
		t.Fatal(err)
	}
	env, err := batch.ParseEnvelope(sealed, batch.MaxAckBytes)
	if err != nil {
		t.Fatal(err)
	}
	return env.Payload()
}

// nested returns the map at path (keys and array indexes) in a payload
// decoded by tamper.
func nested(m map[any]any, path ...any) map[any]any {
	var v any = m
	for _, p := range path {
		switch c := v.(type) {
		case map[any]any:
			v = c[p]
		case []any:
			v = c[p.(int)]
		}
	}
	return v.(map[any]any)
}

// ackStrictCases are signed ack payloads (sampleAck's, edited) that break
// one rule of strict decoding, with the reason and the words of the
// error OpenAck must give.
var ackStrictCases = []strictCase{
	{"non-canonical integer (watermark 103 as 19 00 67)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x04, 0x18, 0x67}, []byte{0x04, 0x19, 0x00, 0x67})
	}, batch.ErrNotCanonical, "watermark: 103 is not in its shortest form"},
	{"non-canonical string length (terminal as 78 04)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte("\x64T-01"), []byte("\x78\x04T-01"))
	}, batch.ErrNotCanonical, "terminal: 4 is not in its shortest form"},
	{"unsorted map keys in the ack (status before epoch)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x02, 0x02, 0x03, 0x01}, []byte{0x03, 0x01, 0x02, 0x02})
	}, batch.ErrNotCanonical, "ack: field 2 after field 3 (keys must be sorted)"},
	{"unsorted map keys in a result (reason before outcome)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x03, 0x03, 0x04, 0x02}, []byte{0x04, 0x02, 0x03, 0x03})
	}, batch.ErrNotCanonical, "result: field 3 after field 4 (keys must be sorted)"},
	{"indefinite-length results array", func(t testing.TB, p []byte) []byte {
		p = splice(t, p, []byte{0x07, 0x83}, []byte{0x07, 0x9f})
		return splice(t, p, []byte{0x08, 0x81}, []byte{0xff, 0x08, 0x81})
	}, batch.ErrMalformed, "results: indefinite lengths are not accepted"},
	{"indefinite-length text (terminal in chunks)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte("\x64T-01"), []byte("\x7f\x62T-\x6201\xff"))
	}, batch.ErrMalformed, "terminal: indefinite lengths are not accepted"},
	{"tag on a snapshot's time (tag 1, epoch time)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x0a, 0x1b}, []byte{0x0a, 0xc1, 0x1b})
	}, batch.ErrMalformed, "snapshot as of: tags are not accepted"},
	{"tag on the whole payload", func(t testing.TB, p []byte) []byte {
		return append([]byte{0xd9, 0xd9, 0xf7}, p...)
	}, batch.ErrMalformed, "ack: tags are not accepted"},
	{"duplicate key in a result (seq twice)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0xa3, 0x01, 0x18, 0x65}, []byte{0xa4, 0x01, 0x18, 0x65, 0x01, 0x18, 0x65})
	}, batch.ErrMalformed, "result: duplicate field 1"},
	{"duplicate key in the ack (terminal twice)", func(t testing.TB, p []byte) []byte {
		// The last field, the hlc (0b 1a 00 2a 00 00), makes room for it.
		if !bytes.HasSuffix(p, []byte{0x0b, 0x1a, 0x00, 0x2a, 0x00, 0x00}) {
			t.Fatal("payload does not end with the hlc")
		}
		return append([]byte{p[0], 0x01, 0x61, 'x'}, p[1:len(p)-6]...)
	}, batch.ErrMalformed, "ack: duplicate field 1"},
	{"unknown field in an allowance", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x09, 0xa2, 0x01, 0x19, 0x01, 0xf4, 0x02}, []byte{0x09, 0xa2, 0x01, 0x19, 0x01, 0xf4, 0x03})
	}, batch.ErrMalformed, "allowance: unknown field 3"},
	{"more fields than the ack has", func(t testing.TB, p []byte) []byte {
		return append([]byte{0xac}, append(bytes.Clone(p[1:]), 0x0c, 0x01)...)
	}, batch.ErrMalformed, "ack: 12 fields, it has 11"},
	{"all-zero last hash spelled out", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x05, 0x58, 0x20, 0x01}, []byte{0x05, 0x58, 0x20, 0x00})
	}, batch.ErrNotCanonical, "last hash holds its zero value"},
	{"float where an integer belongs (balance)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x03, 0x19, 0x04, 0xd2}, []byte{0x03, 0xf9, 0x3c, 0x00})
	}, batch.ErrMalformed, "balance: simple value or float, want an integer"},
	{"negative integer where an unsigned one belongs (epoch)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x02, 0x02, 0x03}, []byte{0x02, 0x21, 0x03})
	}, batch.ErrMalformed, "epoch: negative integer, want unsigned integer"},
	{"status out of range (256)", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte{0x02, 0x02, 0x03, 0x01}, []byte{0x02, 0x02, 0x03, 0x19, 0x01, 0x00})
	}, batch.ErrMalformed, "ack status: 256 out of range (at most 255)"},
	{"invalid UTF-8 in a member id", func(t testing.TB, p []byte) []byte {
		return splice(t, p, []byte("\x63M-7"), []byte("\x63M-\xff"))
	}, batch.ErrMalformed, "snapshot member: invalid UTF-8"},
	{"result op id of 15 bytes", func(t testing.TB, p []byte) []byte {
		return tamper(t, p, func(m map[any]any) { nested(m, uint64(7), 0)[uint64(2)] = make([]byte, 15) })
	}, batch.ErrMalformed, "result op id is 15 bytes, want 16"},
	{"empty results spelled out", func(t testing.TB, p []byte) []byte {
		return tamper(t, p, func(m map[any]any) { m[uint64(7)] = []any{} })
	}, batch.ErrNotCanonical, "results holds its zero value"},
	{"null allowance spelled out", func(t testing.TB, p []byte) []byte {
		return tamper(t, p, func(m map[any]any) { nested(m, uint64(8), 0)[uint64(9)] = nil })
	}, batch.ErrNotCanonical, "allowance holds its zero value"},
	{"zero reject code spelled out", func(t testing.TB, p []byte) []byte {
		return tamper(t, p, func(m map[any]any) { nested(m, uint64(7), 0)[uint64(4)] = uint64(0) })
	}, batch.ErrNotCanonical, "reject code holds its zero value"},
	{"terminal missing", func(t testing.TB, p []byte) []byte {
		return tamper(t, p, func(m map[any]any) { delete(m, uint64(1)) })
	}, batch.ErrNotCanonical, "terminal is missing"},
	{"65 expiring entries in a snapshot", func(t testing.TB, p []byte) []byte {
		return tamper(t, p, func(m map[any]any) {
			s := nested(m, uint64(8), 0)
			e := make([]any, 65)
			for i := range e {
				e[i] = map[any]any{uint64(1): uint64(i + 1)}
			}
			s[uint64(8)] = e
		})
	}, batch.ErrInvalid, "snapshot: 65 expiring entries, at most 64"},
	{"trailing byte", func(t testing.TB, p []byte) []byte {
		return append(bytes.Clone(p), 0x00)
	}, batch.ErrMalformed, "1 bytes after the ack"},
}

// TestOpenAckRefusesNonCanonicalAndMalformedPayloads: each way of
// breaking the strict decoding of an ack gets its own reason and says
// where, and the reference (fxamacker's strict decoding, the re-encoding
// check and the mapping checks) refuses it too.
func TestOpenAckRefusesNonCanonicalAndMalformedPayloads(t *testing.T) {
	cloud := signer(t, batch.CloudSigner, 7)
	good := ackPayload(t, cloud)
	for _, tc := range ackStrictCases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.edit(t, good)
			a, err := batch.OpenAck(mustSealRaw(t, cloud, batch.TypeAck, cloud.KeyID(0), p), program, cloud.Public())
			if !errors.Is(err, tc.reason) || !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("got %v, want %q saying %q", err, tc.reason, tc.detail)
			}
			if a != nil {
				t.Errorf("got an ack with the error")
			}
			if _, err := batch.LibraryDecodeAck(p); err == nil {
				t.Errorf("the reference decoder accepts it")
			}
		})
	}
}

// TestAckDecodersAgreeOnGoodAcks: the hand-written decoder and the
// reference give the same ack for acks of every status, with and without
// results and snapshots, every field set or left out.
func TestAckDecodersAgreeOnGoodAcks(t *testing.T) {
	cloud := signer(t, batch.CloudSigner, 7)
	for name, a := range goodAcks() {
		t.Run(name, func(t *testing.T) {
			sealed, err := cloud.SealAck(a)
			if err != nil {
				t.Fatal(err)
			}
			env, err := batch.ParseEnvelope(sealed, batch.MaxAckBytes)
			if err != nil {
				t.Fatal(err)
			}
			checkAckDecodersAgree(t, env.Payload())
			got, err := batch.DecodeAck(env.Payload())
			if err != nil || !reflect.DeepEqual(got, a) {
				t.Fatalf("got %+v, %v; want %+v", got, err, a)
			}
		})
	}
}

// checkAckDecodersAgree holds the hand-written ack decoder to the
// reference on payload: what one accepts the other accepts, with the
// same ack, which re-encodes to payload when it is valid; what it refuses
// is refused with a *batch.Error of a decoding reason (malformed, not
// canonical, or invalid for too many expiring entries).
func checkAckDecodersAgree(t *testing.T, payload []byte) {
	t.Helper()
	got, err := batch.DecodeAck(payload)
	want, werr := batch.LibraryDecodeAck(payload)
	switch {
	case err != nil:
		var be *batch.Error
		if !errors.As(err, &be) || got != nil {
			t.Fatalf("got %T %v with ack %v; want a *batch.Error and no ack", err, err, got)
		}
		if !errors.Is(err, batch.ErrMalformed) && !errors.Is(err, batch.ErrNotCanonical) && !errors.Is(err, batch.ErrInvalid) {
			t.Fatalf("got %v; a decoding error is malformed, not canonical or invalid", err)
		}
		if werr == nil {
			t.Fatalf("the hand-written decoder refuses a payload the reference accepts: %v", err)
		}
	case werr != nil:
		t.Fatalf("the hand-written decoder accepts a payload the reference refuses (%v)", werr)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("the decoders disagree:\n got %+v\nwant %+v", got, want)
	case got.Validate() != nil:
		// Both decoders take a snapshot's zero card spelled out as 32
		// zero bytes, which SealAck would omit; Validate refuses it (a
		// snapshot without a card), so OpenAck never accepts it.
	default:
		again, err := batch.EncodeAckPayload(got)
		if err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("an accepted payload re-encodes to other bytes (%v)", err)
		}
	}
}
