package batch

import (
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// The wire structs: CBOR maps with small integer keys. They mirror the
// loyalty types field by field but are separate from them, so the domain
// can change without changing the bytes. A key, once used, keeps its
// meaning; new fields take new keys. Zero values are omitted (omitempty),
// so every value has exactly one encoding and a payload that spells out a
// zero field is refused as non-canonical.

type wireBatch struct {
	Terminal     string   `cbor:"1,keyasint"`
	Epoch        uint32   `cbor:"2,keyasint,omitempty"`
	First        uint64   `cbor:"3,keyasint"`
	Last         uint64   `cbor:"4,keyasint"`
	Prev         []byte   `cbor:"5,keyasint,omitempty"`
	RulesVersion uint32   `cbor:"6,keyasint,omitempty"`
	Ops          []wireOp `cbor:"7,keyasint"`
}

type wireOp struct {
	ID           []byte      `cbor:"1,keyasint"`
	Kind         uint8       `cbor:"2,keyasint"`
	Seq          uint64      `cbor:"3,keyasint"`
	Store        string      `cbor:"4,keyasint,omitempty"`
	WallTime     int64       `cbor:"5,keyasint,omitempty"` // Unix nanoseconds
	HLC          uint64      `cbor:"6,keyasint,omitempty"`
	Card         []byte      `cbor:"7,keyasint,omitempty"`
	Member       string      `cbor:"8,keyasint,omitempty"`
	Points       int64       `cbor:"9,keyasint,omitempty"`
	Basket       *wireBasket `cbor:"10,keyasint,omitempty"`
	Reverses     []byte      `cbor:"11,keyasint,omitempty"`
	Reward       string      `cbor:"12,keyasint,omitempty"`
	Reason       string      `cbor:"13,keyasint,omitempty"`
	Receipt      string      `cbor:"14,keyasint,omitempty"`
	Cashier      string      `cbor:"15,keyasint,omitempty"`
	RulesVersion uint32      `cbor:"16,keyasint,omitempty"`
	Offline      bool        `cbor:"17,keyasint,omitempty"`
}

type wireBasket struct {
	Currency string     `cbor:"1,keyasint"`
	Lines    []wireLine `cbor:"2,keyasint"`
}

type wireLine struct {
	SKU      string `cbor:"1,keyasint"`
	Category string `cbor:"2,keyasint,omitempty"`
	Quantity int64  `cbor:"3,keyasint,omitempty"`
	Amount   int64  `cbor:"4,keyasint,omitempty"`
}

type wireAck struct {
	Terminal     string         `cbor:"1,keyasint"`
	Epoch        uint32         `cbor:"2,keyasint,omitempty"`
	Status       uint8          `cbor:"3,keyasint"`
	Watermark    uint64         `cbor:"4,keyasint,omitempty"`
	LastHash     []byte         `cbor:"5,keyasint,omitempty"`
	BatchHash    []byte         `cbor:"6,keyasint,omitempty"`
	Results      []wireResult   `cbor:"7,keyasint,omitempty"`
	Snapshots    []wireSnapshot `cbor:"8,keyasint,omitempty"`
	RulesVersion uint32         `cbor:"9,keyasint,omitempty"`
	Time         int64          `cbor:"10,keyasint,omitempty"`
	HLC          uint64         `cbor:"11,keyasint,omitempty"`
}

type wireResult struct {
	Seq     uint64 `cbor:"1,keyasint"`
	ID      []byte `cbor:"2,keyasint"`
	Outcome uint8  `cbor:"3,keyasint"`
	Reason  uint16 `cbor:"4,keyasint,omitempty"`
	// Points is what the ledger booked for the op when it differs from
	// the terminal's figure (a flagged adjustment), else omitted.
	Adjusted int64 `cbor:"5,keyasint,omitempty"`
}

type wireSnapshot struct {
	Card       []byte         `cbor:"1,keyasint,omitempty"`
	Member     string         `cbor:"2,keyasint,omitempty"`
	Balance    int64          `cbor:"3,keyasint,omitempty"`
	Debt       int64          `cbor:"4,keyasint,omitempty"`
	Tier       string         `cbor:"5,keyasint,omitempty"`
	NextTier   string         `cbor:"6,keyasint,omitempty"`
	ToNextTier int64          `cbor:"7,keyasint,omitempty"`
	Expiring   []wireExpiring `cbor:"8,keyasint,omitempty"`
	Allowance  *wireAllowance `cbor:"9,keyasint,omitempty"`
	AsOf       int64          `cbor:"10,keyasint,omitempty"`
}

type wireExpiring struct {
	Points int64 `cbor:"1,keyasint,omitempty"`
	At     int64 `cbor:"2,keyasint,omitempty"`
}

type wireAllowance struct {
	Points  int64 `cbor:"1,keyasint,omitempty"`
	Expires int64 `cbor:"2,keyasint,omitempty"`
}

type wireSnapshotSet struct {
	Store        string         `cbor:"1,keyasint"`
	AsOf         int64          `cbor:"2,keyasint,omitempty"`
	Snapshots    []wireSnapshot `cbor:"3,keyasint,omitempty"`
	Next         string         `cbor:"4,keyasint,omitempty"`
	RulesVersion uint32         `cbor:"5,keyasint,omitempty"`
}

type wireRules struct {
	Program   string `cbor:"1,keyasint"`
	Version   uint32 `cbor:"2,keyasint"`
	Hash      []byte `cbor:"3,keyasint"`
	Canonical []byte `cbor:"4,keyasint"`
	Issued    int64  `cbor:"5,keyasint,omitempty"`
}

// nanos and fromNanos carry times as Unix nanoseconds; the zero time is 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func bytesOrNil(b []byte) []byte {
	for _, c := range b {
		if c != 0 {
			return b
		}
	}
	return nil
}

// fillWireOp maps o into w; with a non-nil scratch basket it reuses its
// memory for the basket (the encoder of a whole batch does, to allocate
// nothing per op).
func fillWireOp(w *wireOp, o *loyalty.Op, scratch *wireBasket) {
	*w = wireOp{
		ID:           o.ID[:],
		Kind:         uint8(o.Kind),
		Seq:          o.Seq,
		Store:        o.Store,
		WallTime:     nanos(o.WallTime),
		HLC:          uint64(o.HLC),
		Card:         bytesOrNil(o.Card[:]),
		Member:       string(o.Member),
		Points:       int64(o.Points),
		Reverses:     bytesOrNil(o.Reverses[:]),
		Reward:       o.Reward,
		Reason:       o.Reason,
		Receipt:      o.Receipt,
		Cashier:      o.Cashier,
		RulesVersion: o.RulesVersion,
		Offline:      o.Offline,
	}
	if o.Basket == nil {
		return
	}
	b := scratch
	if b == nil {
		b = &wireBasket{}
	}
	b.Currency = string(o.Basket.Currency)
	b.Lines = b.Lines[:0]
	if b.Lines == nil {
		b.Lines = make([]wireLine, 0, len(o.Basket.Lines))
	}
	for _, l := range o.Basket.Lines {
		b.Lines = append(b.Lines, wireLine{SKU: l.SKU, Category: l.Category, Quantity: l.Quantity, Amount: l.Amount})
	}
	w.Basket = b
}

func toWireSnapshot(s *loyalty.Snapshot) wireSnapshot {
	w := wireSnapshot{
		Card:       bytesOrNil(s.Card[:]),
		Member:     string(s.Member),
		Balance:    int64(s.Balance),
		Debt:       int64(s.Debt),
		Tier:       s.Tier,
		NextTier:   s.NextTier,
		ToNextTier: int64(s.ToNextTier),
		AsOf:       nanos(s.AsOf),
	}
	for _, e := range s.Expiring {
		w.Expiring = append(w.Expiring, wireExpiring{Points: int64(e.Points), At: nanos(e.At)})
	}
	if s.Allowance != nil {
		w.Allowance = &wireAllowance{Points: int64(s.Allowance.Points), Expires: nanos(s.Allowance.Expires)}
	}
	return w
}

func fromWireSnapshot(w *wireSnapshot) loyalty.Snapshot {
	s := loyalty.Snapshot{
		Member:     loyalty.MemberID(w.Member),
		Balance:    loyalty.Points(w.Balance),
		Debt:       loyalty.Points(w.Debt),
		Tier:       w.Tier,
		NextTier:   w.NextTier,
		ToNextTier: loyalty.Points(w.ToNextTier),
		AsOf:       fromNanos(w.AsOf),
	}
	copy(s.Card[:], w.Card)
	for _, e := range w.Expiring {
		s.Expiring = append(s.Expiring, loyalty.ExpiringPoints{Points: loyalty.Points(e.Points), At: fromNanos(e.At)})
	}
	if w.Allowance != nil {
		s.Allowance = &loyalty.Allowance{Points: loyalty.Points(w.Allowance.Points), Expires: fromNanos(w.Allowance.Expires)}
	}
	return s
}
