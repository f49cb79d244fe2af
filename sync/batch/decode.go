package batch

import (
	"math"

	"github.com/tillpoint/tillpoint/loyalty"
)

// decodeBatch and its helpers read a batch payload with the reader of
// read.go, under its rules.

// maxBatchArray is the most elements an array of a batch may hold (the
// ops, a basket's lines), as batchDecMode's MaxArrayElements.
const maxBatchArray = max(MaxBatchOps, loyalty.MaxBasketLines)

// decodeBatch decodes a batch payload strictly. It checks the encoding and
// the field sizes; the caller runs Batch.Validate.
func decodeBatch(payload []byte) (*Batch, error) {
	r := newReader(payload, maxBatchArray)
	f, err := r.fields("batch", 7)
	if err != nil {
		return nil, err
	}
	b := &Batch{}
	for {
		k, err := f.next()
		if err != nil {
			return nil, err
		}
		switch k {
		case 1:
			b.Terminal, err = r.text("terminal")
		case 2:
			var n uint64
			n, err = r.optUint(math.MaxUint32, "epoch")
			b.Epoch = uint32(n)
		case 3:
			b.First, err = r.uint(math.MaxUint64, "first")
		case 4:
			b.Last, err = r.uint(math.MaxUint64, "last")
		case 5:
			err = r.nonZeroFixed(b.Prev[:], "prev hash")
		case 6:
			var n uint64
			n, err = r.optUint(math.MaxUint32, "rules version")
			b.RulesVersion = uint32(n)
		case 7:
			if !r.nullable() {
				b.Ops, err = r.ops(b.Terminal, b.Epoch)
			}
		}
		if err != nil {
			return nil, err
		}
		if k == 0 {
			break
		}
	}
	if err := f.required(batchRequired[:]); err != nil {
		return nil, err
	}
	if err := r.done("batch"); err != nil {
		return nil, err
	}
	return b, nil
}

// ops reads the ops array. Baskets and their lines are carved from slabs,
// a few allocations for the whole batch.
func (r *reader) ops(terminal string, epoch uint32) ([]loyalty.Op, error) {
	n, err := r.array("ops")
	if err != nil {
		return nil, err
	}
	ops := make([]loyalty.Op, n)
	var baskets []loyalty.Basket
	var lines []loyalty.Line
	for i := range ops {
		o := &ops[i]
		r.left = n - i
		o.Terminal, o.Epoch = terminal, epoch
		if err := r.op(o, &baskets, &lines); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

func (r *reader) op(o *loyalty.Op, baskets *[]loyalty.Basket, lines *[]loyalty.Line) error {
	f, err := r.fields("op", 17)
	if err != nil {
		return err
	}
	for {
		k, err := f.next()
		if err != nil {
			return err
		}
		var n uint64
		var i int64
		var s string
		switch k {
		case 0:
		case 1:
			if r.nullable() {
				err = fail(ErrMalformed, nil, "payload: op id is 0 bytes, want 16")
			} else {
				err = r.fixed(o.ID[:], "op id")
			}
		case 2:
			n, err = r.uint(math.MaxUint8, "op kind")
			o.Kind = loyalty.OpKind(n)
		case 3:
			o.Seq, err = r.uint(math.MaxUint64, "op seq")
		case 5:
			i, err = r.optInt("wall time")
			o.WallTime = fromNanos(i)
		case 6:
			n, err = r.optUint(math.MaxUint64, "hlc")
			o.HLC = loyalty.HLC(n)
		case 7:
			err = r.nonZeroFixed(o.Card[:], "card hash")
		case 9:
			i, err = r.optInt("points")
			o.Points = loyalty.Points(i)
		case 10:
			err = r.basket(o, baskets, lines)
		case 11:
			err = r.nonZeroFixed(o.Reverses[:], "reversed op id")
		case 16:
			n, err = r.optUint(math.MaxUint32, "op rules version")
			o.RulesVersion = uint32(n)
		case 17:
			switch r.peek() {
			case cborTrue:
				r.off++
				o.Offline = true
			case cborFalse:
				err = spelledOut("offline")
			default:
				_, err = r.want(majOther, "offline")
				if err == nil {
					err = fail(ErrMalformed, nil, "payload: offline: want true")
				}
			}
		default: // 4, 8, 12-15: text fields, omitted when empty
			s, err = r.optText(opTextFields[k])
			switch k {
			case 4:
				o.Store = s
			case 8:
				o.Member = loyalty.MemberID(s)
			case 12:
				o.Reward = s
			case 13:
				o.Reason = s
			case 14:
				o.Receipt = s
			case 15:
				o.Cashier = s
			}
		}
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
	}
	return f.required(opRequired[:])
}

var opTextFields = [...]string{4: "store", 8: "member", 12: "reward", 13: "reason", 14: "receipt", 15: "cashier"}

// The fields always written, by key (see fields.required).
var (
	batchRequired = [...]string{1: "terminal", 3: "first", 4: "last", 7: "ops"}
	opRequired    = [...]string{1: "op id", 2: "op kind", 3: "op seq"}
)

func (r *reader) basket(o *loyalty.Op, baskets *[]loyalty.Basket, lines *[]loyalty.Line) error {
	if r.peek() != majMap<<5|2 {
		if r.nullable() {
			return spelledOut("basket")
		}
		if _, err := r.want(majMap, "basket"); err != nil {
			return err
		}
		return fail(ErrMalformed, nil, "payload: basket: want exactly its currency and lines")
	}
	r.off++
	if len(*baskets) == cap(*baskets) {
		*baskets = make([]loyalty.Basket, 0, min(r.left, slabSize))
	}
	*baskets = (*baskets)[:len(*baskets)+1]
	bk := &(*baskets)[len(*baskets)-1]
	if k, err := r.want(majUint, "basket key"); err != nil {
		return err
	} else if k != 1 {
		return fail(ErrMalformed, nil, "payload: basket: field %d where its currency belongs", k)
	}
	cur, err := r.text("currency")
	if err != nil {
		return err
	}
	bk.Currency = loyalty.Currency(cur)
	if k, err := r.want(majUint, "basket key"); err != nil {
		return err
	} else if k != 2 {
		return fail(ErrMalformed, nil, "payload: basket: field %d where its lines belong", k)
	}
	if r.nullable() {
		return fail(ErrMalformed, nil, "payload: basket lines must be an array, not null")
	}
	n, err := r.array("basket lines")
	if err != nil {
		return err
	}
	if cap(*lines)-len(*lines) < n || *lines == nil {
		*lines = make([]loyalty.Line, 0, max(n, min(n*r.left, slabSize)))
	}
	start := len(*lines)
	*lines = (*lines)[:start+n]
	bk.Lines = (*lines)[start : start+n : start+n]
	for i := range bk.Lines {
		if err := r.line(&bk.Lines[i]); err != nil {
			return err
		}
	}
	o.Basket = bk
	return nil
}

func (r *reader) line(l *loyalty.Line) error {
	f, err := r.fields("basket line", 4)
	if err != nil {
		return err
	}
	for {
		k, err := f.next()
		if err != nil {
			return err
		}
		switch k {
		case 1:
			l.SKU, err = r.text("sku")
		case 2:
			l.Category, err = r.optText("category")
		case 3:
			l.Quantity, err = r.optInt("quantity")
		case 4:
			l.Amount, err = r.optInt("amount")
		}
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
	}
	if !f.has(1) {
		return missing("sku")
	}
	return nil
}
