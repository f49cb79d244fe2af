package loyalty

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The canonical encoding of an Op is a compact binary form with one and only
// one encoding per op: the journal stores it and chains its hash, so two
// implementations that agree on an op agree on its bytes. Integers are
// (zig-zag) varints, strings are length-prefixed, fixed-size IDs are raw.
// The first byte is the encoding version.
const opEncodingV1 = 1

const maxEncodedString = 256

// ErrMalformedOp reports bytes that are not the canonical encoding of an op.
var ErrMalformedOp = errors.New("loyalty: malformed op encoding")

// AppendCanonical appends the canonical encoding of o to b.
func (o *Op) AppendCanonical(b []byte) []byte {
	b = append(b, opEncodingV1, byte(o.Kind))
	b = append(b, o.ID[:]...)
	b = appendString(b, o.Store)
	b = appendString(b, o.Terminal)
	b = binary.AppendUvarint(b, uint64(o.Epoch))
	b = binary.AppendUvarint(b, o.Seq)
	b = binary.AppendVarint(b, o.WallTime.UnixNano())
	b = binary.AppendUvarint(b, uint64(o.HLC))
	b = append(b, o.Card[:]...)
	b = appendString(b, string(o.Member))
	b = binary.AppendVarint(b, int64(o.Points))
	if o.Basket == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendString(b, string(o.Basket.Currency))
		b = binary.AppendUvarint(b, uint64(len(o.Basket.Lines)))
		for _, l := range o.Basket.Lines {
			b = appendString(b, l.SKU)
			b = appendString(b, l.Category)
			b = binary.AppendVarint(b, l.Quantity)
			b = binary.AppendVarint(b, l.Amount)
		}
	}
	b = append(b, o.Reverses[:]...)
	b = appendString(b, o.Reward)
	b = appendString(b, o.Reason)
	b = appendString(b, o.Receipt)
	b = appendString(b, o.Cashier)
	b = binary.AppendUvarint(b, uint64(o.RulesVersion))
	if o.Offline {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return b
}

// MarshalBinary returns the canonical encoding.
func (o *Op) MarshalBinary() ([]byte, error) { return o.AppendCanonical(nil), nil }

// UnmarshalBinary decodes the canonical encoding strictly: any trailing
// byte, overlong varint, out-of-range value or non-canonical form is an error
// wrapping ErrMalformedOp. It never panics on input.
func (o *Op) UnmarshalBinary(data []byte) error {
	d := decoder{buf: data}
	var op Op
	if v := d.byte(); v != opEncodingV1 && d.err == nil {
		return fmt.Errorf("%w: encoding version %d, this build reads %d", ErrMalformedOp, v, opEncodingV1)
	}
	op.Kind = OpKind(d.byte())
	d.fixed(op.ID[:])
	op.Store = d.string()
	op.Terminal = d.string()
	op.Epoch = uint32(d.uvarint(1<<32 - 1))
	op.Seq = d.uvarint(1<<63 - 1)
	op.WallTime = time.Unix(0, d.varint()).UTC()
	op.HLC = HLC(d.uvarint(1<<64 - 1))
	d.fixed(op.Card[:])
	op.Member = MemberID(d.string())
	op.Points = Points(d.varint())
	switch d.byte() {
	case 0:
	case 1:
		b := &Basket{Currency: Currency(d.string())}
		n := d.uvarint(MaxBasketLines)
		if d.err == nil {
			b.Lines = make([]Line, 0, n)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			b.Lines = append(b.Lines, Line{SKU: d.string(), Category: d.string(), Quantity: d.varint(), Amount: d.varint()})
		}
		op.Basket = b
	default:
		d.fail("basket flag")
	}
	d.fixed(op.Reverses[:])
	op.Reward = d.string()
	op.Reason = d.string()
	op.Receipt = d.string()
	op.Cashier = d.string()
	op.RulesVersion = uint32(d.uvarint(1<<32 - 1))
	switch d.byte() {
	case 0:
	case 1:
		op.Offline = true
	default:
		d.fail("offline flag")
	}
	if d.err != nil {
		return d.err
	}
	if len(d.buf) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformedOp, len(d.buf))
	}
	if !bytes.Equal(op.AppendCanonical(nil), data) {
		return fmt.Errorf("%w: not in canonical form", ErrMalformedOp)
	}
	*o = op
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the canonical encoding, remembering the first error.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrMalformedOp, what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.buf) < 1 {
		d.fail("length")
		return 0
	}
	v := d.buf[0]
	d.buf = d.buf[1:]
	return v
}

func (d *decoder) fixed(dst []byte) {
	if d.err != nil || len(d.buf) < len(dst) {
		d.fail("length")
		return
	}
	copy(dst, d.buf)
	d.buf = d.buf[len(dst):]
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 || v > max {
		d.fail("unsigned integer")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("integer")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint(maxEncodedString)
	if d.err != nil || uint64(len(d.buf)) < n {
		d.fail("string")
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}
