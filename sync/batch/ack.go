package batch

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// MaxAckBytes caps an ack: a result per op and a snapshot per card of a
// batch of MaxBatchOps fit well within it.
const MaxAckBytes = 8 << 20

// AckStatus says what the cloud did with a batch.
type AckStatus uint8

const (
	// AckApplied: the batch was applied now; Results say how each op went.
	AckApplied AckStatus = 1
	// AckDuplicate: the batch had been applied before (same hash); the
	// Results are those of the first time.
	AckDuplicate AckStatus = 2
	// AckGap: the batch does not follow the cloud's watermark or chain
	// (HTTP 409). Watermark and LastHash say where the cloud stands: the
	// terminal marks ops up to Watermark acknowledged and re-seals from
	// Watermark+1 with Prev = LastHash. No Results.
	AckGap AckStatus = 3
)

func (s AckStatus) String() string {
	switch s {
	case AckApplied:
		return "applied"
	case AckDuplicate:
		return "duplicate"
	case AckGap:
		return "gap"
	}
	return fmt.Sprintf("ackstatus(%d)", uint8(s))
}

// Outcome is what happened to one op.
type Outcome uint8

const (
	// Applied: the op is now on the ledger.
	Applied Outcome = 1
	// Duplicate: an op with this ID and the same content was applied
	// before (by an earlier batch or another epoch); nothing changed.
	Duplicate Outcome = 2
	// Rejected: the op is not on the ledger, for Reason. The watermark
	// still moves past it: it is reported, never retried.
	Rejected Outcome = 3
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// RejectCode says why the ledger rejected an op. Codes are stable.
type RejectCode uint16

const (
	RejectNone RejectCode = 0
	// RejectInvalid: the op breaks the rules of its kind (loyalty.Op.Validate).
	RejectInvalid RejectCode = 1
	// RejectConflict: an op with this ID but different content was applied before.
	RejectConflict RejectCode = 2
	// RejectUnknownOp: a reverse names an op the ledger does not hold.
	RejectUnknownOp RejectCode = 3
	// RejectUnknownRules: the op names a rules version the cloud never published.
	RejectUnknownRules RejectCode = 4
	// RejectUnknownMember: an adjust names a member the ledger does not know.
	RejectUnknownMember RejectCode = 5
	// RejectAlreadyReversed: the op a reverse names was reversed before.
	RejectAlreadyReversed RejectCode = 6
	// RejectNotReversible: a reverse names an enroll or a reverse.
	RejectNotReversible RejectCode = 7
	// RejectCardLinked: an enroll names a card another member holds.
	RejectCardLinked RejectCode = 8
)

func (c RejectCode) String() string {
	switch c {
	case RejectNone:
		return "none"
	case RejectInvalid:
		return "invalid"
	case RejectConflict:
		return "conflict"
	case RejectUnknownOp:
		return "unknown_op"
	case RejectUnknownRules:
		return "unknown_rules"
	case RejectUnknownMember:
		return "unknown_member"
	case RejectAlreadyReversed:
		return "already_reversed"
	case RejectNotReversible:
		return "not_reversible"
	case RejectCardLinked:
		return "card_linked"
	}
	return fmt.Sprintf("reject(%d)", uint16(c))
}

// Result is the outcome of one op of a batch.
type Result struct {
	Seq     uint64
	ID      loyalty.OpID
	Outcome Outcome
	// Reason is set when Outcome is Rejected.
	Reason RejectCode
	// Adjusted is non-zero when the cloud, re-evaluating an earn with the
	// rules version the op names, booked a flagged adjustment of this many
	// points next to the terminal's figure.
	Adjusted loyalty.Points
}

// Ack is the cloud's signed answer to a batch.
type Ack struct {
	Terminal string
	Epoch    uint32
	Status   AckStatus
	// Watermark is the highest sequence of Epoch the cloud has applied
	// (or rejected) for Terminal: every op up to it is done.
	Watermark uint64
	// LastHash is the hash of the batch that ended at Watermark, the Prev
	// of the terminal's next batch; zero when the cloud does not say.
	LastHash Hash
	// BatchHash is the hash of the batch this ack answers.
	BatchHash Hash
	Results   []Result
	// Snapshots are fresh snapshots of the members whose cards the batch
	// used, allowances included.
	Snapshots []loyalty.Snapshot
	// RulesVersion is the cloud's current rules version: a terminal that
	// holds an older one fetches GET /v1/rules.
	RulesVersion uint32
	// Time and HLC are the cloud's clocks when it answered.
	Time time.Time
	HLC  loyalty.HLC
}

// Validate checks the shape of an ack.
func (a *Ack) Validate() error {
	switch {
	case a.Terminal == "" || len(a.Terminal) > maxIDLen:
		return fmt.Errorf("terminal id must be 1 to %d bytes", maxIDLen)
	case a.Status < AckApplied || a.Status > AckGap:
		return fmt.Errorf("unknown ack status %d", a.Status)
	case len(a.Results) > MaxBatchOps:
		return fmt.Errorf("%d results, at most %d", len(a.Results), MaxBatchOps)
	case len(a.Snapshots) > MaxBatchOps:
		return fmt.Errorf("%d snapshots, at most %d", len(a.Snapshots), MaxBatchOps)
	case a.Status == AckGap && len(a.Results) != 0:
		return fmt.Errorf("a gap ack carries no results")
	}
	for i, r := range a.Results {
		switch {
		case r.Outcome < Applied || r.Outcome > Rejected:
			return fmt.Errorf("result %d: unknown outcome %d", i, r.Outcome)
		case (r.Outcome == Rejected) != (r.Reason != RejectNone):
			return fmt.Errorf("result %d: a reject code goes with a rejected outcome, and only with it", i)
		case r.Seq > a.Watermark:
			return fmt.Errorf("result %d: sequence %d above the watermark %d", i, r.Seq, a.Watermark)
		case i > 0 && r.Seq != a.Results[i-1].Seq+1:
			return fmt.Errorf("result %d: sequences must follow each other", i)
		}
	}
	for i := range a.Snapshots {
		if a.Snapshots[i].Card.IsZero() {
			return fmt.Errorf("snapshot %d: no card", i)
		}
	}
	return nil
}

// SealAck validates and signs an ack with the cloud's key.
func (s *Signer) SealAck(a *Ack) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("batch: seal ack: %w", err)
	}
	payload, err := encMode.Marshal(toWireAck(a))
	if err != nil {
		return nil, fmt.Errorf("batch: encode ack: %w", err)
	}
	if len(payload) > MaxAckBytes-256 {
		return nil, fmt.Errorf("batch: seal ack: %d bytes, more than an agent takes (%d)", len(payload), MaxAckBytes)
	}
	b, err := s.seal(TypeAck, s.KeyID(0), payload)
	if err != nil {
		return nil, fmt.Errorf("batch: seal ack: %w", err)
	}
	return b, nil
}

// toWireAck maps a to its wire struct.
func toWireAck(a *Ack) *wireAck {
	w := &wireAck{
		Terminal:     a.Terminal,
		Epoch:        a.Epoch,
		Status:       uint8(a.Status),
		Watermark:    a.Watermark,
		LastHash:     bytesOrNil(a.LastHash[:]),
		BatchHash:    bytesOrNil(a.BatchHash[:]),
		RulesVersion: a.RulesVersion,
		Time:         nanos(a.Time),
		HLC:          uint64(a.HLC),
	}
	if len(a.Results) > 0 {
		w.Results = make([]wireResult, len(a.Results))
		for i, r := range a.Results {
			w.Results[i] = wireResult{Seq: r.Seq, ID: r.ID[:], Outcome: uint8(r.Outcome), Reason: uint16(r.Reason), Adjusted: int64(r.Adjusted)}
		}
	}
	w.Snapshots = toWireSnapshots(a.Snapshots)
	return w
}

// OpenAck parses, verifies with the cloud's public key and decodes an ack:
// the payload strictly, in one pass (decode_ack.go), then Ack.Validate.
func OpenAck(data []byte, program string, cloud ed25519.PublicKey) (*Ack, error) {
	e, err := ParseEnvelope(data, MaxAckBytes)
	if err != nil {
		return nil, err
	}
	if e.KeyID.Signer != CloudSigner {
		return nil, fail(ErrKeyMismatch, nil, "an ack is signed by %q, not %q", CloudSigner, e.KeyID.Signer)
	}
	if err := e.verify(TypeAck, program, cloud); err != nil {
		return nil, err
	}
	a, err := decodeAck(e.payload)
	if err != nil {
		return nil, err
	}
	if err := a.Validate(); err != nil {
		return nil, fail(ErrInvalid, nil, "ack: %v", err)
	}
	return a, nil
}

func toWireSnapshots(ss []loyalty.Snapshot) []wireSnapshot {
	if len(ss) == 0 {
		return nil
	}
	w := make([]wireSnapshot, len(ss))
	for i := range ss {
		w[i] = toWireSnapshot(&ss[i])
	}
	return w
}

func fromWireSnapshots(ws []wireSnapshot) ([]loyalty.Snapshot, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	ss := make([]loyalty.Snapshot, len(ws))
	for i := range ws {
		if ws[i].Card != nil && len(ws[i].Card) != len(loyalty.CardHash{}) {
			return nil, fail(ErrMalformed, nil, "snapshot %d: card hash is %d bytes, want 32", i, len(ws[i].Card))
		}
		if len(ws[i].Expiring) > maxExpiring {
			return nil, fail(ErrInvalid, nil, "snapshot %d: %d expiring entries, at most %d", i, len(ws[i].Expiring), maxExpiring)
		}
		ss[i] = fromWireSnapshot(&ws[i])
	}
	return ss, nil
}
