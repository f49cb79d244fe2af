package batch_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// The fuzz targets feed untrusted bytes to the decoders. Whatever the
// input: no panic, every error is a *batch.Error, and whatever is accepted
// re-seals to exactly the bytes that were accepted (one encoding per value).
//
// FuzzOpenBatch and FuzzOpenAck mutate whole sealed messages, so they
// mostly exercise the envelope checks; FuzzBatchPayload and FuzzAckPayload
// sign whatever payload the fuzzer makes, so the strict payload decoding
// behind the signature check is explored too.

func FuzzOpenBatch(f *testing.F) {
	s := signer(f, "T-01", 1)
	for _, n := range []int{1, 3} {
		sealed, err := s.SealBatch(newBatch("T-01", 1, 1, n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed.Bytes)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkEnvelope(t, data, batch.MaxBatchBytes)
		b, h, err := batch.OpenBatch(data, program, s.Public())
		checkBatch(t, s, data, b, h, err)
	})
}

// checkEnvelope holds ParseEnvelope's fast path to the reference: what it
// accepts, fxamacker's strict decoding accepts too, with the same fields.
func checkEnvelope(t *testing.T, data []byte, max int) {
	t.Helper()
	e, err := batch.ParseEnvelope(data, max)
	if err != nil {
		return
	}
	ref, err := batch.ParseEnvelopeReference(data)
	if err != nil {
		t.Fatalf("ParseEnvelope accepts an envelope the reference refuses: %v", err)
	}
	if ref.KeyID != e.KeyID || ref.ContentType != e.ContentType || !bytes.Equal(ref.Payload(), e.Payload()) {
		t.Fatalf("ParseEnvelope and the reference read the envelope differently: %+v, %+v", e, ref)
	}
}

func FuzzBatchPayload(f *testing.F) {
	s := signer(f, "T-01", 1)
	for _, n := range []int{1, 2} {
		sealed, err := s.SealBatch(newBatch("T-01", 1, 1, n))
		if err != nil {
			f.Fatal(err)
		}
		e, err := batch.ParseEnvelope(sealed.Bytes, batch.MaxBatchBytes)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.Payload())
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		data, err := s.SealRaw(batch.TypeBatch, s.KeyID(1), payload)
		if err != nil {
			t.Fatal(err)
		}
		b, h, err := batch.OpenBatch(data, program, s.Public())
		checkBatch(t, s, data, b, h, err)
	})
}

// FuzzBatchDecoders holds the hand-written batch decoder OpenBatch uses
// to the reference, fxamacker's strict decoding plus the re-encoding
// check: the same payloads accepted, with the same batch (see
// checkDecodersAgree).
func FuzzBatchDecoders(f *testing.F) {
	s := signer(f, "T-01", 1)
	good := strictPayload(f, s)
	f.Add(good)
	for _, tc := range strictCases {
		f.Add(tc.edit(f, good))
	}
	f.Fuzz(checkDecodersAgree)
}

func checkBatch(t *testing.T, s *batch.Signer, data []byte, b *batch.Batch, h batch.Hash, err error) {
	t.Helper()
	if err != nil {
		var be *batch.Error
		if !errors.As(err, &be) || b != nil {
			t.Fatalf("got %T %v with batch %v; want a *batch.Error and no batch", err, err, b)
		}
		return
	}
	again, err := s.SealBatch(b)
	if err != nil {
		t.Fatalf("an accepted batch does not re-seal: %v", err)
	}
	if !bytes.Equal(again.Bytes, data) || again.Hash != h {
		t.Fatalf("an accepted batch re-seals to other bytes")
	}
}

func FuzzOpenAck(f *testing.F) {
	cloud := signer(f, batch.CloudSigner, 7)
	good, err := cloud.SealAck(sampleAck())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkEnvelope(t, data, batch.MaxAckBytes)
		a, err := batch.OpenAck(data, program, cloud.Public())
		checkAck(t, cloud, data, a, err)
	})
}

// FuzzAckPayload also holds the hand-written ack decoder OpenAck uses to
// the reference, fxamacker's strict decoding plus the re-encoding check:
// the same payloads accepted, with the same ack (checkAckDecodersAgree).
func FuzzAckPayload(f *testing.F) {
	cloud := signer(f, batch.CloudSigner, 7)
	good := ackPayload(f, cloud)
	f.Add(good)
	for _, tc := range ackStrictCases {
		f.Add(tc.edit(f, good))
	}
	for _, a := range goodAcks() {
		sealed, err := cloud.SealAck(a)
		if err != nil {
			f.Fatal(err)
		}
		e, err := batch.ParseEnvelope(sealed, batch.MaxAckBytes)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.Payload())
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkAckDecodersAgree(t, payload)
		data, err := cloud.SealRaw(batch.TypeAck, cloud.KeyID(0), payload)
		if err != nil {
			t.Fatal(err)
		}
		a, err := batch.OpenAck(data, program, cloud.Public())
		checkAck(t, cloud, data, a, err)
	})
}

func checkAck(t *testing.T, cloud *batch.Signer, data []byte, a *batch.Ack, err error) {
	t.Helper()
	if err != nil {
		var be *batch.Error
		if !errors.As(err, &be) || a != nil {
			t.Fatalf("got %T %v with ack %v; want a *batch.Error and no ack", err, err, a)
		}
		return
	}
	again, err := cloud.SealAck(a)
	if err != nil {
		t.Fatalf("an accepted ack does not re-seal: %v", err)
	}
	if !bytes.Equal(again, data) {
		t.Fatalf("an accepted ack re-seals to other bytes")
	}
}
