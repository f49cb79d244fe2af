package batch_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

const program = "prog-test"

// key returns a deterministic Ed25519 key, so seeds and corpora are stable.
func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func signer(t testing.TB, name string, seed byte) *batch.Signer {
	t.Helper()
	s, err := batch.NewSigner(name, program, key(seed))
	if err != nil {
		t.Fatalf("new signer: %v", err)
	}
	return s
}

var t0 = time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)

// ops returns n ops of terminal term, epoch, sequences first..: a mix of
// kinds with baskets of a few lines, as a till would write them.
func ops(term string, epoch uint32, first uint64, n int) []loyalty.Op {
	out := make([]loyalty.Op, n)
	for i := range out {
		seq := first + uint64(i)
		var id loyalty.OpID
		copy(id[:6], term)
		id[6] = 0x70
		binary.BigEndian.PutUint64(id[8:], uint64(epoch)<<48|seq)
		var card loyalty.CardHash
		binary.BigEndian.PutUint64(card[:], seq%17+1)
		o := loyalty.Op{
			ID: id, Kind: loyalty.OpEarn, Store: "S-01", Terminal: term, Epoch: epoch, Seq: seq,
			WallTime: t0.Add(time.Duration(seq) * time.Second), HLC: loyalty.HLC(uint64(t0.UnixMilli())<<16 | seq),
			Card: card, Points: loyalty.Points(seq % 50), RulesVersion: 3, Receipt: "R-1042", Cashier: "anna",
			Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{
				{SKU: "4006381333931", Category: "dairy", Quantity: 2, Amount: 398},
				{SKU: "5000112637922", Category: "drinks", Quantity: 1, Amount: 1249},
				{SKU: "BAG", Quantity: 1, Amount: 20},
			}},
		}
		switch seq % 7 {
		case 3:
			o.Kind, o.Basket, o.Points, o.Reward, o.Offline = loyalty.OpRedeem, nil, -100, "coffee", true
		case 5:
			o.Kind, o.Basket, o.Points, o.Reverses = loyalty.OpReverse, nil, -5, out[0].ID
		}
		out[i] = o
	}
	return out
}

func newBatch(term string, epoch uint32, first uint64, n int) *batch.Batch {
	return &batch.Batch{Terminal: term, Epoch: epoch, First: first, Last: first + uint64(n) - 1, RulesVersion: 3, Ops: ops(term, epoch, first, n)}
}

// canonical returns the loyalty canonical encoding of ops, for comparing
// ops whatever their time.Location.
func canonical(ops []loyalty.Op) []byte {
	var b []byte
	for i := range ops {
		b = ops[i].AppendCanonical(b)
	}
	return b
}

// tamper decodes a CBOR payload generically, lets edit change it, and
// re-encodes it deterministically.
func tamper(t testing.TB, payload []byte, edit func(m map[any]any)) []byte {
	t.Helper()
	var m map[any]any
	if err := cbor.Unmarshal(payload, &m); err != nil {
		t.Fatalf("tamper: decode: %v", err)
	}
	edit(m)
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := em.Marshal(m)
	if err != nil {
		t.Fatalf("tamper: encode: %v", err)
	}
	return out
}
