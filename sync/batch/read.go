package batch

import (
	"math"
	"unicode/utf8"
)

// The messages read most, the batch (decode.go) and the ack
// (decode_ack.go), are decoded by hand in one pass straight into their Go
// types: no reflection, no intermediate wire structs, no re-encoding. The
// reader below enforces, item by item, every rule the package doc names
// for untrusted CBOR, with the limits fxamacker's decoder is held to for
// the same message:
//
//   - well-formed, definite-length items only; no tags, no trailing bytes
//     (ErrMalformed);
//   - every head in its shortest form, map keys in increasing order, a
//     zero value omitted rather than spelled out (ErrNotCanonical): the
//     core deterministic encoding, checked on the bytes as they are read,
//     so the payload has exactly the one encoding the Seal* function
//     writes;
//   - known integer keys only, each once, with the type of its field;
//     valid UTF-8 text; integers within their field's range; arrays of at
//     most maxArray elements (ErrMalformed).
//
// FuzzBatchDecoders and FuzzAckPayload hold each decoder to fxamacker's
// strict decoding plus the re-encoding check: both accept exactly the
// same payloads, with the same values.

// reader reads one payload. str is the payload as one string: text fields
// are substrings of it, one allocation for every string of a message
// (which keeps that copy alive while any of its strings is: batches and
// acks are applied and dropped).
type reader struct {
	b   []byte
	str string
	off int
	// maxArray is the most elements an array of this message may hold
	// (the MaxArrayElements of its fxamacker decoding mode).
	maxArray int
	// left is how many elements of the message's main array (a batch's
	// ops, an ack's snapshots) remain to be read, the current one
	// included: it sizes the slabs the small parts are carved from.
	left int
}

func newReader(payload []byte, maxArray int) *reader {
	return &reader{b: payload, str: string(payload), maxArray: maxArray}
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

// want reads a head of major type m; a null is refused like any other
// type (the few fields that may be null check nullable first).
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

// array reads an array head of at most r.maxArray elements, each at least a
// byte long.
func (r *reader) array(what string) (int, error) {
	n, err := r.want(majArray, what)
	if err != nil {
		return 0, err
	}
	if n > uint64(r.maxArray) {
		return 0, fail(ErrMalformed, nil, "payload: %s: %d elements, at most %d", what, n, r.maxArray)
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

// required refuses a map that lacks a field always written: names[k]
// names key k when it is one.
func (f *fields) required(names []string) error {
	for k, name := range names {
		if name != "" && !f.has(uint64(k)) {
			return missing(name)
		}
	}
	return nil
}

// spelledOut is the error for a field holding its zero value, which the
// deterministic encoding omits.
func spelledOut(what string) error {
	return fail(ErrNotCanonical, nil, "payload: %s holds its zero value, which is omitted", what)
}

// missing is the error for a required field that is absent.
func missing(what string) error {
	return fail(ErrNotCanonical, nil, "payload: %s is missing (it is always written)", what)
}

// nonZeroFixed reads an omitempty fixed-size byte string: an empty or
// all-zero one is its zero value spelled out (the encoders omit it).
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

// slabSize is the most small parts (baskets, lines, allowances...) one
// allocation holds; fewer when fewer elements remain.
const slabSize = 256

// optUint reads an omitempty unsigned integer of at most limit: zero is
// its zero value spelled out.
func (r *reader) optUint(limit uint64, what string) (uint64, error) {
	n, err := r.uint(limit, what)
	if err == nil && n == 0 {
		err = spelledOut(what)
	}
	return n, err
}

// optInt reads an omitempty integer.
func (r *reader) optInt(what string) (int64, error) {
	i, err := r.int(what)
	if err == nil && i == 0 {
		err = spelledOut(what)
	}
	return i, err
}

// optText reads an omitempty text string.
func (r *reader) optText(what string) (string, error) {
	s, err := r.text(what)
	if err == nil && s == "" {
		err = spelledOut(what)
	}
	return s, err
}

// done refuses bytes after the message's top-level map.
func (r *reader) done(what string) error {
	if r.off != len(r.b) {
		return fail(ErrMalformed, nil, "payload: %d bytes after the %s", len(r.b)-r.off, what)
	}
	return nil
}
