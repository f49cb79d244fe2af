package batch

import (
	"math"
	"unicode/utf8"

	"github.com/tillpoint/tillpoint/loyalty"
)

// The batch payload, the hot message, is decoded by hand in one pass
// straight into the loyalty types: no reflection, no intermediate wire
// structs, no re-encoding. The reader enforces, item by item, every rule
// the package doc names for untrusted CBOR, with the limits batchDecMode
// holds fxamacker's decoder to:
//
//   - well-formed, definite-length items only; no tags, no trailing bytes
//     (ErrMalformed);
//   - every head in its shortest form, map keys in increasing order, a
//     zero value omitted rather than spelled out (ErrNotCanonical): the
//     core deterministic encoding, checked on the bytes as they are read,
//     so the payload has exactly the one encoding SealBatch writes;
//   - known integer keys only, each once, with the type of its field;
//     valid UTF-8 text; integers within their field's range; arrays of at
//     most maxArray elements (ErrMalformed).
//
// FuzzBatchDecoders holds it to fxamacker's strict decoding plus the
// re-encoding check: both accept exactly the same payloads, with the same
// values.

// maxArray is the most elements an array of a batch may hold (the ops, a
// basket's lines), as batchDecMode's MaxArrayElements.
const maxArray = max(MaxBatchOps, loyalty.MaxBasketLines)

// reader reads a batch payload. str is the payload as one string: text
// fields are substrings of it, one allocation for every string of a batch
// (which keeps that copy alive while any op of the batch is: batches are
// applied and dropped).
type reader struct {
	b   []byte
	str string
	off int
	// left is how many ops remain to be read, the current one included:
	// it sizes the slabs of baskets and lines.
	left int
}

// Major types of CBOR heads.
const (
	majUint  = 0
	majNeg   = 1
	majBytes = 2
	majText  = 3
	majArray = 4
	majMap   = 5
	majTag   = 6
	majOther = 7
)

const (
	cborFalse = 0xf4
	cborTrue  = 0xf5
	cborNull  = 0xf6
)

// peek returns the next byte without consuming it (0 at the end: the head
// that follows reports the truncation).
func (r *reader) peek() byte {
	if r.off < len(r.b) {
		return r.b[r.off]
	}
	return 0
}

// head reads a data item's head: its major type and argument. It refuses
// truncation, tags, indefinite lengths and reserved values, and heads not
// in their shortest form. A major type 7 item is returned with its
// additional information as argument, unread beyond its first byte: the
// callers accept only the single-byte true and null.
func (r *reader) head(what string) (major byte, arg uint64, err error) {
	if r.off >= len(r.b) {
		return 0, 0, fail(ErrMalformed, nil, "payload: %s: truncated", what)
	}
	ib := r.b[r.off]
	major, ai := ib>>5, ib&0x1f
	r.off++
	switch {
	case major == majTag:
		return 0, 0, fail(ErrMalformed, nil, "payload: %s: tags are not accepted", what)
	case major == majOther:
		return major, uint64(ai), nil
	case ai < 24:
		return major, uint64(ai), nil
	case ai == 31:
		return 0, 0, fail(ErrMalformed, nil, "payload: %s: indefinite lengths are not accepted", what)
	case ai > 27:
		return 0, 0, fail(ErrMalformed, nil, "payload: %s: reserved additional information %d", what, ai)
	}
	n := 1 << (ai - 24) // 1, 2, 4 or 8 bytes
	if len(r.b)-r.off < n {
		return 0, 0, fail(ErrMalformed, nil, "payload: %s: truncated", what)
	}
	for _, c := range r.b[r.off : r.off+n] {
		arg = arg<<8 | uint64(c)
	}
	r.off += n
	if min := [...]uint64{24, 1 << 8, 1 << 16, 1 << 32}[ai-24]; arg < min {
		return 0, 0, fail(ErrNotCanonical, nil, "payload: %s: %d is not in its shortest form", what, arg)
	}
	return major, arg, nil
}

// want reads a head of major type m (null is refused: no field of a
// batch reads null as its value, see nullable).
func (r *reader) want(m byte, what string) (uint64, error) {
	major, arg, err := r.head(what)
	if err != nil {
		return 0, err
	}
	if major != m {
		return 0, fail(ErrMalformed, nil, "payload: %s: %s, want %s", what, kindName(major, arg), kindName(m, 0))
	}
	return arg, nil
}

func kindName(major byte, arg uint64) string {
	switch major {
	case majUint:
		return "unsigned integer"
	case majNeg:
		return "negative integer"
	case majBytes:
		return "byte string"
	case majText:
		return "text string"
	case majArray:
		return "array"
	case majMap:
		return "map"
	}
	switch arg {
	case cborFalse & 0x1f, cborTrue & 0x1f:
		return "boolean"
	case cborNull & 0x1f:
		return "null"
	}
	return "simple value or float"
}

func (r *reader) uint(limit uint64, what string) (uint64, error) {
	n, err := r.want(majUint, what)
	if err == nil && n > limit {
		err = fail(ErrMalformed, nil, "payload: %s: %d out of range (at most %d)", what, n, limit)
	}
	return n, err
}

func (r *reader) int(what string) (int64, error) {
	major, arg, err := r.head(what)
	switch {
	case err != nil:
		return 0, err
	case major != majUint && major != majNeg:
		return 0, fail(ErrMalformed, nil, "payload: %s: %s, want an integer", what, kindName(major, arg))
	case arg > math.MaxInt64:
		return 0, fail(ErrMalformed, nil, "payload: %s: integer out of range", what)
	case major == majNeg:
		return -1 - int64(arg), nil
	}
	return int64(arg), nil
}

// span reads a byte or text string's content (major m) and returns its offsets.
func (r *reader) span(m byte, what string) (start, end int, err error) {
	n, err := r.want(m, what)
	if err != nil {
		return 0, 0, err
	}
	if n > uint64(len(r.b)-r.off) {
		return 0, 0, fail(ErrMalformed, nil, "payload: %s: truncated", what)
	}
	start, r.off = r.off, r.off+int(n)
	return start, r.off, nil
}

func (r *reader) text(what string) (string, error) {
	start, end, err := r.span(majText, what)
	if err != nil {
		return "", err
	}
	s := r.str[start:end]
	if !utf8.ValidString(s) {
		return "", fail(ErrMalformed, nil, "payload: %s: invalid UTF-8", what)
	}
	return s, nil
}

// fixed reads a byte string of exactly len(dst) bytes into dst.
func (r *reader) fixed(dst []byte, what string) error {
	start, end, err := r.span(majBytes, what)
	if err != nil {
		return err
	}
	if end-start != len(dst) {
		return fail(ErrMalformed, nil, "payload: %s is %d bytes, want %d", what, end-start, len(dst))
	}
	copy(dst, r.b[start:end])
	return nil
}

// nullable reports (and consumes) a null where the wire struct has a nil
// slice that is written as null: the ops, an op's ID, a basket's lines.
func (r *reader) nullable() bool {
	if r.peek() == cborNull {
		r.off++
		return true
	}
	return false
}

// array reads an array head of at most maxArray elements, each at least a
// byte long.
func (r *reader) array(what string) (int, error) {
	n, err := r.want(majArray, what)
	if err != nil {
		return 0, err
	}
	if n > maxArray {
		return 0, fail(ErrMalformed, nil, "payload: %s: %d elements, at most %d", what, n, maxArray)
	}
	if n > uint64(len(r.b)-r.off) {
		return 0, fail(ErrMalformed, nil, "payload: %s: truncated", what)
	}
	return int(n), nil
}

// fields reads a map of up to maxKey pairs whose keys are the integers
// 1..maxKey: each call to next returns the following key, refusing keys
// out of order (ErrNotCanonical), repeated or unknown (ErrMalformed).
type fields struct {
	r         *reader
	what      string
	n, maxKey uint64
	seen      uint32
	last      uint64
}

func (r *reader) fields(what string, maxKey uint64) (fields, error) {
	n, err := r.want(majMap, what)
	if err == nil && n > maxKey {
		err = fail(ErrMalformed, nil, "payload: %s: %d fields, it has %d", what, n, maxKey)
	}
	return fields{r: r, what: what, n: n, maxKey: maxKey}, err
}

// next returns the next key, 0 when the map is done.
func (f *fields) next() (uint64, error) {
	if f.n == 0 {
		return 0, nil
	}
	f.n--
	k, err := f.r.want(majUint, f.what)
	switch {
	case err != nil:
		return 0, err
	case k == 0 || k > f.maxKey:
		return 0, fail(ErrMalformed, nil, "payload: %s: unknown field %d", f.what, k)
	case f.seen&(1<<k) != 0:
		return 0, fail(ErrMalformed, nil, "payload: %s: duplicate field %d", f.what, k)
	case k < f.last:
		return 0, fail(ErrNotCanonical, nil, "payload: %s: field %d after field %d (keys must be sorted)", f.what, k, f.last)
	}
	f.seen |= 1 << k
	f.last = k
	return k, nil
}

// has reports whether key k was read.
func (f *fields) has(k uint64) bool { return f.seen&(1<<k) != 0 }

// spelledOut is the error for a field holding its zero value, which the
// deterministic encoding omits.
func spelledOut(what string) error {
	return fail(ErrNotCanonical, nil, "payload: %s holds its zero value, which is omitted", what)
}

// missing is the error for a required field that is absent.
func missing(what string) error {
	return fail(ErrNotCanonical, nil, "payload: %s is missing (it is always written)", what)
}

// decodeBatch decodes a batch payload strictly. It checks the encoding and
// the field sizes; the caller runs Batch.Validate.
func decodeBatch(payload []byte) (*Batch, error) {
	r := &reader{b: payload, str: string(payload)}
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
			if n, err = r.uint(math.MaxUint32, "epoch"); err == nil && n == 0 {
				err = spelledOut("epoch")
			}
			b.Epoch = uint32(n)
		case 3:
			b.First, err = r.uint(math.MaxUint64, "first")
		case 4:
			b.Last, err = r.uint(math.MaxUint64, "last")
		case 5:
			err = r.nonZeroFixed(b.Prev[:], "prev hash")
		case 6:
			var n uint64
			if n, err = r.uint(math.MaxUint32, "rules version"); err == nil && n == 0 {
				err = spelledOut("rules version")
			}
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
	for _, k := range [...]uint64{1, 3, 4, 7} {
		if !f.has(k) {
			return nil, missing([...]string{1: "terminal", 3: "first", 4: "last", 7: "ops"}[k])
		}
	}
	if r.off != len(r.b) {
		return nil, fail(ErrMalformed, nil, "payload: %d bytes after the batch", len(r.b)-r.off)
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
			if i, err = r.int("wall time"); err == nil && i == 0 {
				err = spelledOut("wall time")
			}
			o.WallTime = fromNanos(i)
		case 6:
			if n, err = r.uint(math.MaxUint64, "hlc"); err == nil && n == 0 {
				err = spelledOut("hlc")
			}
			o.HLC = loyalty.HLC(n)
		case 7:
			err = r.nonZeroFixed(o.Card[:], "card hash")
		case 9:
			if i, err = r.int("points"); err == nil && i == 0 {
				err = spelledOut("points")
			}
			o.Points = loyalty.Points(i)
		case 10:
			err = r.basket(o, baskets, lines)
		case 11:
			err = r.nonZeroFixed(o.Reverses[:], "reversed op id")
		case 16:
			if n, err = r.uint(math.MaxUint32, "op rules version"); err == nil && n == 0 {
				err = spelledOut("op rules version")
			}
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
			name := opTextFields[k]
			if s, err = r.text(name); err == nil && s == "" {
				err = spelledOut(name)
			}
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
	for _, k := range [...]uint64{1, 2, 3} {
		if !f.has(k) {
			return missing([...]string{1: "op id", 2: "op kind", 3: "op seq"}[k])
		}
	}
	return nil
}

var opTextFields = [...]string{4: "store", 8: "member", 12: "reward", 13: "reason", 14: "receipt", 15: "cashier"}

// nonZeroFixed reads an omitempty fixed-size byte string: an empty or
// all-zero one is its zero value spelled out (SealBatch omits it).
func (r *reader) nonZeroFixed(dst []byte, what string) error {
	if r.peek() == majBytes<<5 {
		r.off++
		return spelledOut(what)
	}
	if err := r.fixed(dst, what); err != nil {
		return err
	}
	for _, c := range dst {
		if c != 0 {
			return nil
		}
	}
	return spelledOut(what)
}

// slabSize is the most baskets or lines one allocation holds; fewer when
// fewer ops remain.
const slabSize = 256

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
			if l.Category, err = r.text("category"); err == nil && l.Category == "" {
				err = spelledOut("category")
			}
		case 3:
			if l.Quantity, err = r.int("quantity"); err == nil && l.Quantity == 0 {
				err = spelledOut("quantity")
			}
		case 4:
			if l.Amount, err = r.int("amount"); err == nil && l.Amount == 0 {
				err = spelledOut("amount")
			}
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
