package batch

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/tillpoint/tillpoint/loyalty"
)

// batchDecMode is fxamacker's strict decoding of a batch, the reference
// the hand-written decoder (decode.go) is held to: a batch nests at most
// six deep (batch, ops, op, basket, lines, line); its largest arrays are
// the ops and a basket's lines.
var batchDecMode = mustDecMode(limits{nested: 8, array: maxBatchArray, mapPairs: 32})

// LibraryDecodeBatch decodes a batch payload the reference way: fxamacker's
// strict decoding into the wire structs, the re-encoding check, the field
// sizes, the mapping to the loyalty types. DecodeBatch is the hand-written
// decoder OpenBatch uses.
func LibraryDecodeBatch(payload []byte) (*Batch, error) {
	var w wireBatch
	if err := batchDecMode.Unmarshal(payload, &w); err != nil {
		return nil, fail(ErrMalformed, err, "payload")
	}
	if !bytes.Equal(w.appendCBOR(nil), payload) {
		return nil, fail(ErrNotCanonical, nil, "payload")
	}
	b := &Batch{Terminal: w.Terminal, Epoch: w.Epoch, First: w.First, Last: w.Last, RulesVersion: w.RulesVersion}
	if w.Ops != nil {
		b.Ops = make([]loyalty.Op, len(w.Ops))
	}
	if w.Prev != nil {
		if len(w.Prev) != len(b.Prev) {
			return nil, fail(ErrMalformed, nil, "prev hash is %d bytes, want %d", len(w.Prev), len(b.Prev))
		}
		copy(b.Prev[:], w.Prev)
	}
	for i := range w.Ops {
		wo := &w.Ops[i]
		switch {
		case len(wo.ID) != len(loyalty.OpID{}):
			return nil, fail(ErrMalformed, nil, "op %d: op id is %d bytes", i, len(wo.ID))
		case wo.Card != nil && len(wo.Card) != len(loyalty.CardHash{}):
			return nil, fail(ErrMalformed, nil, "op %d: card hash is %d bytes", i, len(wo.Card))
		case wo.Reverses != nil && len(wo.Reverses) != len(loyalty.OpID{}):
			return nil, fail(ErrMalformed, nil, "op %d: reversed op id is %d bytes", i, len(wo.Reverses))
		case wo.Basket != nil && wo.Basket.Lines == nil:
			return nil, fail(ErrMalformed, nil, "op %d: basket lines are null", i)
		}
		b.Ops[i] = fromWireOp(wo, w.Terminal, w.Epoch)
	}
	return b, nil
}

// DecodeBatch is the hand-written strict decoder of a batch payload.
func DecodeBatch(payload []byte) (*Batch, error) { return decodeBatch(payload) }

// BareDecodeBatch decodes a batch payload with fxamacker's default
// options into the wire structs: no limits beyond the defaults, no
// strictness, no canonical check, no mapping. The benchmarks' baseline.
func BareDecodeBatch(payload []byte) error {
	var w wireBatch
	if err := cbor.Unmarshal(payload, &w); err != nil {
		return fmt.Errorf("bare decode: %w", err)
	}
	return nil
}

// SealRaw signs any payload with any content type and kid: the tests and
// fuzz targets use it to build signed messages this package would refuse
// to seal.
func (s *Signer) SealRaw(ct string, kid KeyID, payload []byte) ([]byte, error) {
	return s.seal(ct, kid, payload)
}

// Payload returns an envelope's payload bytes.
func (e *Envelope) Payload() []byte { return e.payload }

// Bytes returns the kid's encoding.
func (k KeyID) Bytes() []byte {
	b, err := k.marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// LibraryEncodeBatch encodes a batch payload through fxamacker/cbor's
// reflection encoder, and HandEncodeBatch through ours: they must agree.
func LibraryEncodeBatch(payload []byte) (lib, hand []byte, err error) {
	var w wireBatch
	if err := batchDecMode.Unmarshal(payload, &w); err != nil {
		return nil, nil, err
	}
	lib, err = encMode.Marshal(&w)
	return lib, w.appendCBOR(nil), err
}

// fromWireOp maps a decoded wire op (LibraryDecodeBatch); the caller has
// checked the fixed sizes.
func fromWireOp(w *wireOp, terminal string, epoch uint32) loyalty.Op {
	o := loyalty.Op{
		Kind:         loyalty.OpKind(w.Kind),
		Store:        w.Store,
		Terminal:     terminal,
		Epoch:        epoch,
		Seq:          w.Seq,
		WallTime:     fromNanos(w.WallTime),
		HLC:          loyalty.HLC(w.HLC),
		Member:       loyalty.MemberID(w.Member),
		Points:       loyalty.Points(w.Points),
		Reward:       w.Reward,
		Reason:       w.Reason,
		Receipt:      w.Receipt,
		Cashier:      w.Cashier,
		RulesVersion: w.RulesVersion,
		Offline:      w.Offline,
	}
	copy(o.ID[:], w.ID)
	copy(o.Card[:], w.Card)
	copy(o.Reverses[:], w.Reverses)
	if w.Basket != nil {
		b := &loyalty.Basket{Currency: loyalty.Currency(w.Basket.Currency), Lines: make([]loyalty.Line, len(w.Basket.Lines))}
		for i, l := range w.Basket.Lines {
			b.Lines[i] = loyalty.Line{SKU: l.SKU, Category: l.Category, Quantity: l.Quantity, Amount: l.Amount}
		}
		o.Basket = b
	}
	return o
}

// EncodeBatchPayload encodes b's payload as SealBatch does, without
// validating or signing it.
func EncodeBatchPayload(b *Batch) []byte {
	w := wireBatch{Terminal: b.Terminal, Epoch: b.Epoch, First: b.First, Last: b.Last, Prev: bytesOrNil(b.Prev[:]), RulesVersion: b.RulesVersion}
	if b.Ops != nil {
		w.Ops = make([]wireOp, len(b.Ops))
		for i := range b.Ops {
			fillWireOp(&w.Ops[i], &b.Ops[i], nil)
		}
	}
	return w.appendCBOR(nil)
}

// ParseEnvelopeReference is ParseEnvelope without its fast path: the
// envelope through fxamacker's strict decoding and the re-encoding checks.
func ParseEnvelopeReference(data []byte) (*Envelope, error) { return parseEnvelope(data) }

// BareDecodeAck decodes an ack payload with fxamacker's default options
// into the wire struct: the ack benchmark's baseline, like BareDecodeBatch.
func BareDecodeAck(payload []byte) error {
	var w wireAck
	if err := cbor.Unmarshal(payload, &w); err != nil {
		return fmt.Errorf("bare decode: %w", err)
	}
	return nil
}
