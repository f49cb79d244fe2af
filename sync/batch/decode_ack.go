package batch

import (
	"math"

	"github.com/tillpoint/tillpoint/loyalty"
)

// decodeAck and its helpers read an ack payload with the reader of
// read.go, under its rules, straight into Ack, Result and loyalty.Snapshot.
// FuzzAckPayload holds it to the reference (fxamacker's strict decoding
// with ackDecMode, the re-encoding check and the mapping checks that
// OpenAck ran before): the same payloads accepted, with the same ack.

// maxAckArray is the most elements an array of an ack may hold (results,
// snapshots, expiring points), as ackDecMode's MaxArrayElements. Validate
// holds results and snapshots to MaxBatchOps, and a snapshot's expiring
// points are held to maxExpiring as they are read.
const maxAckArray = 2 * MaxBatchOps

// maxExpiring is the most expiring entries a snapshot may list.
const maxExpiring = 64

// The fields always written, by key (see fields.required).
var (
	ackRequired    = [...]string{1: "terminal", 3: "ack status"}
	resultRequired = [...]string{1: "result seq", 2: "result op id", 3: "outcome"}
)

// decodeAck decodes an ack payload strictly. It checks the encoding, the
// field sizes and the number of expiring entries; the caller runs
// Ack.Validate.
func decodeAck(payload []byte) (*Ack, error) {
	r := newReader(payload, maxAckArray)
	f, err := r.fields("ack", 11)
	if err != nil {
		return nil, err
	}
	a := &Ack{}
	for {
		k, err := f.next()
		if err != nil {
			return nil, err
		}
		var n uint64
		var i int64
		switch k {
		case 0:
		case 1:
			a.Terminal, err = r.text("terminal")
		case 2:
			n, err = r.optUint(math.MaxUint32, "epoch")
			a.Epoch = uint32(n)
		case 3:
			n, err = r.uint(math.MaxUint8, "ack status")
			a.Status = AckStatus(n)
		case 4:
			a.Watermark, err = r.optUint(math.MaxUint64, "watermark")
		case 5:
			err = r.nonZeroFixed(a.LastHash[:], "last hash")
		case 6:
			err = r.nonZeroFixed(a.BatchHash[:], "batch hash")
		case 7:
			a.Results, err = r.results()
		case 8:
			a.Snapshots, err = r.snapshots()
		case 9:
			n, err = r.optUint(math.MaxUint32, "rules version")
			a.RulesVersion = uint32(n)
		case 10:
			i, err = r.optInt("ack time")
			a.Time = fromNanos(i)
		case 11:
			n, err = r.optUint(math.MaxUint64, "ack hlc")
			a.HLC = loyalty.HLC(n)
		}
		if err != nil {
			return nil, err
		}
		if k == 0 {
			break
		}
	}
	if err := f.required(ackRequired[:]); err != nil {
		return nil, err
	}
	if err := r.done("ack"); err != nil {
		return nil, err
	}
	return a, nil
}

// optArray reads the head of an omitempty array: null or no elements is
// its zero value spelled out.
func (r *reader) optArray(what string) (int, error) {
	if r.nullable() {
		return 0, spelledOut(what)
	}
	n, err := r.array(what)
	if err == nil && n == 0 {
		err = spelledOut(what)
	}
	return n, err
}

func (r *reader) results() ([]Result, error) {
	n, err := r.optArray("results")
	if err != nil {
		return nil, err
	}
	rs := make([]Result, n)
	for i := range rs {
		if err := r.result(&rs[i]); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func (r *reader) result(res *Result) error {
	f, err := r.fields("result", 5)
	if err != nil {
		return err
	}
	for {
		k, err := f.next()
		if err != nil {
			return err
		}
		var n uint64
		switch k {
		case 0:
		case 1:
			res.Seq, err = r.uint(math.MaxUint64, "result seq")
		case 2:
			if r.nullable() {
				err = fail(ErrMalformed, nil, "payload: result op id is 0 bytes, want 16")
			} else {
				err = r.fixed(res.ID[:], "result op id")
			}
		case 3:
			n, err = r.uint(math.MaxUint8, "outcome")
			res.Outcome = Outcome(n)
		case 4:
			n, err = r.optUint(math.MaxUint16, "reject code")
			res.Reason = RejectCode(n)
		case 5:
			var i int64
			i, err = r.optInt("adjusted points")
			res.Adjusted = loyalty.Points(i)
		}
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
	}
	return f.required(resultRequired[:])
}

// snapshotSlabs are the slabs a snapshot's allowance and expiring points
// are carved from: a few allocations for the whole ack.
type snapshotSlabs struct {
	allowances []loyalty.Allowance
	expiring   []loyalty.ExpiringPoints
}

func (r *reader) snapshots() ([]loyalty.Snapshot, error) {
	n, err := r.optArray("snapshots")
	if err != nil {
		return nil, err
	}
	ss := make([]loyalty.Snapshot, n)
	var slabs snapshotSlabs
	for i := range ss {
		r.left = n - i
		if err := r.snapshot(&ss[i], &slabs); err != nil {
			return nil, err
		}
	}
	return ss, nil
}

func (r *reader) snapshot(s *loyalty.Snapshot, slabs *snapshotSlabs) error {
	f, err := r.fields("snapshot", 10)
	if err != nil {
		return err
	}
	for {
		k, err := f.next()
		if err != nil {
			return err
		}
		var i int64
		var t string
		switch k {
		case 0:
		case 1:
			// Any 32 bytes: a zero card spelled out is refused by
			// Validate (a snapshot without a card), as it was before.
			if r.peek() == majBytes<<5 {
				r.off++
				err = spelledOut("snapshot card hash")
			} else {
				err = r.fixed(s.Card[:], "snapshot card hash")
			}
		case 2:
			t, err = r.optText("snapshot member")
			s.Member = loyalty.MemberID(t)
		case 3:
			i, err = r.optInt("balance")
			s.Balance = loyalty.Points(i)
		case 4:
			i, err = r.optInt("debt")
			s.Debt = loyalty.Points(i)
		case 5:
			s.Tier, err = r.optText("tier")
		case 6:
			s.NextTier, err = r.optText("next tier")
		case 7:
			i, err = r.optInt("points to next tier")
			s.ToNextTier = loyalty.Points(i)
		case 8:
			s.Expiring, err = r.expiring(&slabs.expiring)
		case 9:
			s.Allowance, err = r.allowance(&slabs.allowances)
		case 10:
			i, err = r.optInt("snapshot as of")
			s.AsOf = fromNanos(i)
		}
		if err != nil {
			return err
		}
		if k == 0 {
			break
		}
	}
	return nil
}

// expiring reads a snapshot's expiring points into a slice carved from
// slab.
func (r *reader) expiring(slab *[]loyalty.ExpiringPoints) ([]loyalty.ExpiringPoints, error) {
	n, err := r.optArray("expiring entries")
	if err != nil {
		return nil, err
	}
	if n > maxExpiring {
		return nil, fail(ErrInvalid, nil, "payload: snapshot: %d expiring entries, at most %d", n, maxExpiring)
	}
	if cap(*slab)-len(*slab) < n {
		*slab = make([]loyalty.ExpiringPoints, 0, max(n, min(n*r.left, slabSize)))
	}
	start := len(*slab)
	*slab = (*slab)[:start+n]
	es := (*slab)[start : start+n : start+n]
	for i := range es {
		if err := r.expiringEntry(&es[i]); err != nil {
			return nil, err
		}
	}
	return es, nil
}

func (r *reader) expiringEntry(e *loyalty.ExpiringPoints) error {
	f, err := r.fields("expiring entry", 2)
	if err != nil {
		return err
	}
	for {
		k, err := f.next()
		if err != nil {
			return err
		}
		var i int64
		switch k {
		case 1:
			i, err = r.optInt("expiring points")
			e.Points = loyalty.Points(i)
		case 2:
			i, err = r.optInt("expiry time")
			e.At = fromNanos(i)
		}
		if err != nil {
			return err
		}
		if k == 0 {
			return nil
		}
	}
}

// allowance reads a snapshot's allowance into an element of slab. An
// allowance with nothing in it is written as an empty map; null is its
// absence spelled out.
func (r *reader) allowance(slab *[]loyalty.Allowance) (*loyalty.Allowance, error) {
	if r.nullable() {
		return nil, spelledOut("allowance")
	}
	f, err := r.fields("allowance", 2)
	if err != nil {
		return nil, err
	}
	if len(*slab) == cap(*slab) {
		*slab = make([]loyalty.Allowance, 0, min(r.left, slabSize))
	}
	*slab = (*slab)[:len(*slab)+1]
	al := &(*slab)[len(*slab)-1]
	for {
		k, err := f.next()
		if err != nil {
			return nil, err
		}
		var i int64
		switch k {
		case 1:
			i, err = r.optInt("allowance points")
			al.Points = loyalty.Points(i)
		case 2:
			i, err = r.optInt("allowance expiry")
			al.Expires = fromNanos(i)
		}
		if err != nil {
			return nil, err
		}
		if k == 0 {
			return al, nil
		}
	}
}
