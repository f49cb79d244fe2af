package loyalty_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

func sampleOp(t testing.TB) loyalty.Op {
	t.Helper()
	card, _ := loyalty.ParseCardToken("nfc:04A1B2C3D4E5F6")
	id, err := loyalty.NewOpID(time.Date(2026, 11, 23, 14, 5, 0, 0, time.UTC), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return loyalty.Op{
		ID: id, Kind: loyalty.OpEarn, Store: "S001", Terminal: "T01", Epoch: 1, Seq: 42,
		WallTime: time.Date(2026, 11, 23, 14, 5, 0, 123456789, time.UTC), HLC: 0x1234_5678_9abc_0001,
		Card: card.Hash(loyalty.CardKey("k")), Member: "M-1", Points: 84,
		Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{
			{SKU: "4006381333931", Category: "coffee", Quantity: 2, Amount: 798},
			{SKU: "RET-1", Category: "food", Quantity: -1, Amount: -150},
		}},
		Receipt: "R-2026-0001", Cashier: "C7", RulesVersion: 7, Offline: true,
	}
}

func TestOpCanonicalRoundTrip(t *testing.T) {
	ops := []loyalty.Op{sampleOp(t)}
	redeem := sampleOp(t)
	redeem.Kind, redeem.Points, redeem.Basket, redeem.Reward = loyalty.OpRedeem, -150, nil, "coffee"
	reverse := sampleOp(t)
	reverse.Kind, reverse.Points, reverse.Basket, reverse.Reverses = loyalty.OpReverse, -84, nil, ops[0].ID
	ops = append(ops, redeem, reverse)
	for _, op := range ops {
		if err := op.Validate(); err != nil {
			t.Fatalf("%s: %v", op.Kind, err)
		}
		enc := op.AppendCanonical(nil)
		var got loyalty.Op
		if err := got.UnmarshalBinary(enc); err != nil {
			t.Fatalf("%s: decode: %v", op.Kind, err)
		}
		if !bytes.Equal(got.AppendCanonical(nil), enc) {
			t.Errorf("%s: re-encoding differs", op.Kind)
		}
		if got.ID != op.ID || got.Points != op.Points || !got.WallTime.Equal(op.WallTime) || got.Offline != op.Offline {
			t.Errorf("%s: decoded %+v, want %+v", op.Kind, got, op)
		}
	}
}

// TestOpDecodeRejectsNonCanonical: a stored op has exactly one encoding, so
// a chain hash over it cannot be matched by other bytes.
func TestOpDecodeRejectsNonCanonical(t *testing.T) {
	op := sampleOp(t)
	enc := op.AppendCanonical(nil)
	cases := map[string][]byte{
		"empty":            nil,
		"truncated":        enc[:len(enc)-1],
		"trailing byte":    append(append([]byte{}, enc...), 0),
		"unknown version":  append([]byte{9}, enc[1:]...),
		"bad offline flag": append(append([]byte{}, enc[:len(enc)-1]...), 2),
	}
	for name, b := range cases {
		var got loyalty.Op
		if err := got.UnmarshalBinary(b); !errors.Is(err, loyalty.ErrMalformedOp) {
			t.Errorf("%s: got %v, want ErrMalformedOp", name, err)
		}
	}
}

func FuzzOpDecode(f *testing.F) {
	op := sampleOp(f)
	f.Add(op.AppendCanonical(nil))
	op.Basket = nil
	op.Kind = loyalty.OpEnroll
	f.Add(op.AppendCanonical(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var op loyalty.Op
		if err := op.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, loyalty.ErrMalformedOp) {
				t.Fatalf("error does not wrap ErrMalformedOp: %v", err)
			}
			return
		}
		if !bytes.Equal(op.AppendCanonical(nil), data) {
			t.Fatalf("accepted bytes that do not re-encode identically")
		}
		_ = op.Validate() // must not panic on any decoded op
	})
}

func TestOpValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*loyalty.Op)
	}{
		{"no id", func(o *loyalty.Op) { o.ID = loyalty.OpID{} }},
		{"no terminal", func(o *loyalty.Op) { o.Terminal = "" }},
		{"no wall time", func(o *loyalty.Op) { o.WallTime = time.Time{} }},
		{"earn without basket", func(o *loyalty.Op) { o.Basket = nil }},
		{"earn with negative points", func(o *loyalty.Op) { o.Points = -1 }},
		{"earn beyond one op's bound", func(o *loyalty.Op) { o.Points = loyalty.MaxOpPoints + 1 }},
		{"redeem beyond one op's bound", func(o *loyalty.Op) {
			o.Kind, o.Basket, o.Points = loyalty.OpRedeem, nil, -loyalty.MaxOpPoints-1
		}},
		{"redeem with positive points", func(o *loyalty.Op) { o.Kind, o.Basket, o.Points = loyalty.OpRedeem, nil, 10 }},
		{"redeem without card", func(o *loyalty.Op) {
			o.Kind, o.Basket, o.Points, o.Card = loyalty.OpRedeem, nil, -10, loyalty.CardHash{}
		}},
		{"redeem with basket", func(o *loyalty.Op) { o.Kind, o.Points = loyalty.OpRedeem, -10 }},
		{"reverse without target", func(o *loyalty.Op) { o.Kind, o.Basket = loyalty.OpReverse, nil }},
		{"enroll moving points", func(o *loyalty.Op) { o.Kind, o.Basket = loyalty.OpEnroll, nil }},
		{"adjust without reason", func(o *loyalty.Op) { o.Kind, o.Basket = loyalty.OpAdjust, nil }},
		{"unknown kind", func(o *loyalty.Op) { o.Kind, o.Basket = 99, nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := sampleOp(t)
			tt.mutate(&op)
			if err := op.Validate(); !errors.Is(err, loyalty.ErrInvalidOp) {
				t.Errorf("got %v, want ErrInvalidOp", err)
			}
		})
	}
}

func TestOpIDIsUUIDv7(t *testing.T) {
	at := time.Date(2026, 11, 23, 14, 5, 0, 0, time.UTC)
	a, _ := loyalty.NewOpID(at, rand.Reader)
	b, _ := loyalty.NewOpID(at.Add(time.Millisecond), rand.Reader)
	s := a.String()
	if s[14] != '7' || (s[19] != '8' && s[19] != '9' && s[19] != 'a' && s[19] != 'b') {
		t.Errorf("%s is not a v7 UUID with the RFC 9562 variant", s)
	}
	if bytes.Compare(a[:], b[:]) >= 0 {
		t.Errorf("a later ID sorts first: %s >= %s", a, b)
	}
	back, err := loyalty.ParseOpID(s)
	if err != nil || back != a {
		t.Errorf("ParseOpID(%s): got %s, %v", s, back, err)
	}
	if _, err := loyalty.ParseOpID("not-a-uuid"); err == nil {
		t.Error("ParseOpID accepted garbage")
	}
}

// TestHLCMonotonic: the clock never goes back, even when the wall clock does.
func TestHLCMonotonic(t *testing.T) {
	wall := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	c := &loyalty.HLClock{Now: func() time.Time { return wall }}
	prev := c.Tick()
	steps := []time.Duration{0, time.Second, -time.Hour, 0, time.Millisecond}
	for _, d := range steps {
		wall = wall.Add(d)
		next := c.Tick()
		if next <= prev {
			t.Fatalf("HLC went from %s to %s after a wall step of %v", prev, next, d)
		}
		prev = next
	}
	remote := prev + 1<<20
	c.Observe(remote)
	if got := c.Tick(); got <= remote {
		t.Errorf("tick after observing %s: got %s", remote, got)
	}
}

func TestMoneyString(t *testing.T) {
	cases := map[loyalty.Money]string{
		{Amount: 1234, Currency: "EUR"}: "12.34 EUR",
		{Amount: 5, Currency: "EUR"}:    "0.05 EUR",
		{Amount: -150, Currency: "USD"}: "-1.50 USD",
		{Amount: 1500, Currency: "JPY"}: "1500 JPY",
		{Amount: 1500, Currency: "KWD"}: "1.500 KWD",
	}
	for m, want := range cases {
		if got := m.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
