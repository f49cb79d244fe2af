package batch_test

import (
	"bytes"
	"testing"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// The hand-written batch encoder must write what the library's core
// deterministic mode writes, field for field, for every shape of op.
func TestAppendBatchMatchesLibrary(t *testing.T) {
	s := signer(t, "T-01", 1)
	b := newBatch("T-01", 1, 1, 30)
	b.Ops[0].Offline, b.Ops[0].Member, b.Ops[0].Reason = true, "M-1", "goodwill"
	b.Ops[1].WallTime = t0.AddDate(-60, 0, 0) // before 1970: a negative integer
	b.Ops[3].Basket.Lines[0].Category, b.Ops[3].Basket.Lines[1].Amount = "", -499
	b.Ops[5].Basket.Lines[0].Quantity = -1
	b.Ops[6].Store, b.Ops[6].Receipt, b.Ops[6].Cashier, b.Ops[6].RulesVersion, b.Ops[6].HLC = "", "", "", 0, 0
	b.Ops[8].Basket = &loyalty.Basket{Currency: "EUR"} // no lines: null
	b.Ops[10].Basket = &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{}}
	b.Ops[12].Points = 1 << 40
	b.Ops[11].Points = -(1 << 33)
	for _, v := range []struct {
		name string
		edit func(*batch.Batch)
	}{
		{"mixed ops", func(*batch.Batch) {}},
		{"epoch 0, no rules, no prev", func(b *batch.Batch) {
			b.Epoch, b.RulesVersion = 0, 0
			for i := range b.Ops {
				b.Ops[i].Epoch = 0
			}
		}},
		{"prev and large epoch", func(b *batch.Batch) {
			b.Prev[31], b.RulesVersion = 7, 1<<31
			b.Epoch = 1 << 20
			for i := range b.Ops {
				b.Ops[i].Epoch = 1 << 20
			}
		}},
	} {
		t.Run(v.name, func(t *testing.T) {
			bb := *b
			bb.Ops = append([]loyalty.Op(nil), b.Ops...)
			v.edit(&bb)
			sealed, err := s.SealBatch(&bb)
			if err != nil {
				t.Fatal(err)
			}
			e, err := batch.ParseEnvelope(sealed.Bytes, batch.MaxBatchBytes)
			if err != nil {
				t.Fatal(err)
			}
			lib, hand, err := batch.LibraryEncodeBatch(e.Payload())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(lib, e.Payload()) || !bytes.Equal(hand, lib) {
				t.Errorf("encodings differ:\nsealed  %x\nlibrary %x\nhand    %x", e.Payload(), lib, hand)
			}
			if _, _, err := batch.OpenBatch(sealed.Bytes, program, s.Public()); err != nil {
				t.Errorf("open: %v", err)
			}
		})
	}
}
