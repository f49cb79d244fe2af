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

// ackDecMode is fxamacker's strict decoding of an ack, the reference the
// hand-written decoder (decode_ack.go) is held to: an ack nests at most
// five deep (ack, snapshots, snapshot, expiring, entry); its arrays hold
// at most twice MaxBatchOps elements (Validate holds results and
// snapshots to MaxBatchOps).
var ackDecMode = mustDecMode(limits{nested: 8, array: maxAckArray, mapPairs: 32})

// LibraryDecodeAck decodes an ack payload the reference way, as OpenAck
// did before decode_ack.go: fxamacker's strict decoding into the wire
// structs, the re-encoding check, the field sizes, the mapping to Ack.
// DecodeAck is the hand-written decoder OpenAck uses. Neither runs
// Validate.
func LibraryDecodeAck(payload []byte) (*Ack, error) {
	var w wireAck
	if err := decodePayload(ackDecMode, payload, &w); err != nil {
		return nil, err
	}
	a := &Ack{
		Terminal:     w.Terminal,
		Epoch:        w.Epoch,
		Status:       AckStatus(w.Status),
		Watermark:    w.Watermark,
		RulesVersion: w.RulesVersion,
		Time:         fromNanos(w.Time),
		HLC:          loyalty.HLC(w.HLC),
	}
	if err := copyHash(&a.LastHash, w.LastHash, "last hash"); err != nil {
		return nil, err
	}
	if err := copyHash(&a.BatchHash, w.BatchHash, "batch hash"); err != nil {
		return nil, err
	}
	if len(w.Results) > 0 {
		a.Results = make([]Result, len(w.Results))
		for i, r := range w.Results {
			if len(r.ID) != len(loyalty.OpID{}) {
				return nil, fail(ErrMalformed, nil, "result %d: op id is %d bytes, want 16", i, len(r.ID))
			}
			a.Results[i] = Result{Seq: r.Seq, Outcome: Outcome(r.Outcome), Reason: RejectCode(r.Reason), Adjusted: loyalty.Points(r.Adjusted)}
			copy(a.Results[i].ID[:], r.ID)
		}
	}
	var err error
	if a.Snapshots, err = fromWireSnapshots(w.Snapshots); err != nil {
		return nil, err
	}
	return a, nil
}

// DecodeAck is the hand-written strict decoder of an ack payload.
func DecodeAck(payload []byte) (*Ack, error) { return decodeAck(payload) }

// EncodeAckPayload encodes a's payload as SealAck does, without
// validating or signing it.
func EncodeAckPayload(a *Ack) ([]byte, error) {
	return encMode.Marshal(toWireAck(a))
}

func copyHash(dst *Hash, src []byte, what string) error {
	if src == nil {
		return nil
	}
	if len(src) != len(dst) {
		return fail(ErrMalformed, nil, "%s is %d bytes, want %d", what, len(src), len(dst))
	}
	copy(dst[:], src)
	if dst.IsZero() { // SealAck omits a zero hash: a second encoding
		return fail(ErrNotCanonical, nil, "%s holds its zero value, which is omitted", what)
	}
	return nil
}
