package batch_test

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// The headline benchmarks time the real thing and its bare baseline
// alternately in the same loop, so both see the same machine load, and
// report per-op figures and their ratio (goal: at most 1.3x).
//
//	ns/loyalty-op       SealBatch (or OpenBatch) per op of the batch
//	bare-ns/loyalty-op  sign: cbor.Marshal of the same []loyalty.Op + ed25519.Sign;
//	                    verify: ed25519.Verify + cbor.Unmarshal (default options)
//	                    of the same payload bytes (see bareVerify)
//	x-bare              the ratio of the two
//	x-binary            verify only: the ratio to the earlier baseline (binaryVerify)

var benchSizes = []int{10, 100, 1000}

func BenchmarkBatchSign(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("ops=%d", n), func(b *testing.B) {
			s := signer(b, "T-01", 1)
			bt := newBatch("T-01", 1, 1, n)
			priv := key(1)
			var ours, bare time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t := time.Now()
				if _, err := s.SealBatch(bt); err != nil {
					b.Fatal(err)
				}
				ours += time.Since(t)
				t = time.Now()
				bareSign(b, priv, bt.Ops)
				bare += time.Since(t)
			}
			report(b, n, ours, bare)
		})
	}
}

func BenchmarkBareSign(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("ops=%d", n), func(b *testing.B) {
			priv, o := key(1), ops("T-01", 1, 1, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bareSign(b, priv, o)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/loyalty-op")
		})
	}
}

func BenchmarkBatchVerify(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("ops=%d", n), func(b *testing.B) {
			s := signer(b, "T-01", 1)
			sealed, err := s.SealBatch(newBatch("T-01", 1, 1, n))
			if err != nil {
				b.Fatal(err)
			}
			priv := key(1)
			pub := priv.Public().(ed25519.PublicKey)
			payload, sig := samePayload(b, priv, sealed.Bytes)
			binPayload, binSig := bareSign(b, priv, ops("T-01", 1, 1, n))
			var ours, bare, bin time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t := time.Now()
				if _, _, err := batch.OpenBatch(sealed.Bytes, program, s.Public()); err != nil {
					b.Fatal(err)
				}
				ours += time.Since(t)
				t = time.Now()
				bareVerify(b, pub, payload, sig)
				bare += time.Since(t)
				t = time.Now()
				binaryVerify(b, pub, binPayload, binSig)
				bin += time.Since(t)
			}
			report(b, n, ours, bare)
			b.ReportMetric(float64(bin.Nanoseconds())/float64(b.N)/float64(n), "binary-ns/loyalty-op")
			b.ReportMetric(float64(ours)/float64(bin), "x-binary")
		})
	}
}

func BenchmarkBareVerify(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("ops=%d", n), func(b *testing.B) {
			s := signer(b, "T-01", 1)
			sealed, err := s.SealBatch(newBatch("T-01", 1, 1, n))
			if err != nil {
				b.Fatal(err)
			}
			priv := key(1)
			payload, sig := samePayload(b, priv, sealed.Bytes)
			pub := priv.Public().(ed25519.PublicKey)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bareVerify(b, pub, payload, sig)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/loyalty-op")
		})
	}
}

func bareSign(b *testing.B, priv ed25519.PrivateKey, ops []loyalty.Op) (payload, sig []byte) {
	payload, err := cbor.Marshal(ops)
	if err != nil {
		b.Fatal(err)
	}
	return payload, ed25519.Sign(priv, payload)
}

// samePayload returns the payload of sealed, the exact bytes OpenBatch
// decodes, and a bare Ed25519 signature of them.
func samePayload(b *testing.B, priv ed25519.PrivateKey, sealed []byte) (payload, sig []byte) {
	env, err := batch.ParseEnvelope(sealed, batch.MaxBatchBytes)
	if err != nil {
		b.Fatal(err)
	}
	payload = env.Payload()
	return payload, ed25519.Sign(priv, payload)
}

// bareVerify is the baseline of BatchVerify: ed25519.Verify of the batch's
// payload bytes and fxamacker's decoding of the same bytes with its
// default options into the wire structs.
func bareVerify(b *testing.B, pub ed25519.PublicKey, payload, sig []byte) {
	if !ed25519.Verify(pub, payload, sig) {
		b.Fatal("bare signature does not verify")
	}
	if err := batch.BareDecodeBatch(payload); err != nil {
		b.Fatal(err)
	}
}

// binaryVerify was the baseline until 2026-11-23 and is still reported
// (x-binary): ed25519.Verify of another, denser payload (the ops in
// loyalty's canonical binary encoding, one CBOR byte string each) and its
// decoding with loyalty's hand-written strict decoder.
func binaryVerify(b *testing.B, pub ed25519.PublicKey, payload, sig []byte) {
	if !ed25519.Verify(pub, payload, sig) {
		b.Fatal("bare signature does not verify")
	}
	var o []loyalty.Op
	if err := cbor.Unmarshal(payload, &o); err != nil {
		b.Fatal(err)
	}
}

func report(b *testing.B, n int, ours, bare time.Duration) {
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N)/float64(n), "ns/loyalty-op")
	b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N)/float64(n), "bare-ns/loyalty-op")
	b.ReportMetric(float64(ours)/float64(bare), "x-bare")
}

// BenchmarkAckVerify times OpenAck of a catch-up's ack (bigAck: 1,000 op
// results, 500 member snapshots) against its bare baseline, alternately in
// the same loop:
//
//	ns/ack       OpenAck of the sealed ack
//	bare-ns/ack  ed25519.Verify + cbor.Unmarshal (default options) of the
//	             same payload bytes into the wire struct (BareDecodeAck)
//	x-bare       the ratio of the two
func BenchmarkAckVerify(b *testing.B) {
	cloud := signer(b, batch.CloudSigner, 7)
	sealed, err := cloud.SealAck(bigAck(1000, 500))
	if err != nil {
		b.Fatal(err)
	}
	priv := key(7)
	pub := priv.Public().(ed25519.PublicKey)
	env, err := batch.ParseEnvelope(sealed, batch.MaxAckBytes)
	if err != nil {
		b.Fatal(err)
	}
	payload := env.Payload()
	sig := ed25519.Sign(priv, payload)
	var ours, bare time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		if _, err := batch.OpenAck(sealed, program, cloud.Public()); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(t)
		t = time.Now()
		if !ed25519.Verify(pub, payload, sig) {
			b.Fatal("bare signature does not verify")
		}
		if err := batch.BareDecodeAck(payload); err != nil {
			b.Fatal(err)
		}
		bare += time.Since(t)
	}
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N), "ns/ack")
	b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N), "bare-ns/ack")
	b.ReportMetric(float64(ours)/float64(bare), "x-bare")
	b.ReportMetric(float64(len(payload)), "payload-bytes")
}
