package cloud

import (
	"errors"
	"fmt"
)

// Errors a Ledger returns. Match them with errors.Is; only the HTTP layer
// turns them into statuses.
var (
	// ErrNotFound: no such terminal, rules version or card.
	ErrNotFound = errors.New("cloud: not found")
	// ErrRulesConflict: a rules version is already published with other content.
	ErrRulesConflict = errors.New("cloud: rules version already published with a different hash; publish a new version")
	// ErrEnrollCode: the enrollment code is unknown, used or expired. The
	// three are deliberately one error, so a caller learns nothing by guessing.
	ErrEnrollCode = errors.New("cloud: enrollment code is unknown, already used or expired; ask the operator for a new one")
	// ErrTerminalRevoked: the terminal's key was revoked; its batches are refused.
	ErrTerminalRevoked = errors.New("cloud: terminal revoked; re-enroll it with a new code")
	// ErrUnknownTerminal: the terminal was never enrolled.
	ErrUnknownTerminal = errors.New("cloud: unknown terminal; enroll it first")
	// ErrInvalidBatch: the batch is inconsistent in itself (sequence numbers,
	// terminal or epoch of its ops do not match its header). Nothing was applied.
	ErrInvalidBatch = errors.New("cloud: invalid batch")
	// ErrInvariant: a ledger invariant failed while applying; the
	// transaction was rolled back and nothing changed. Stop ingesting and
	// run the ledger check: this is a bug or a corrupted database.
	ErrInvariant = errors.New("cloud: ledger invariant violated; transaction rolled back")
	// ErrCheckFailed: Check found balances that do not match the ledger.
	ErrCheckFailed = errors.New("cloud: ledger check failed")
	// ErrNotClaimable: the op is not an applied earn made without a card or a member, or it was reversed.
	ErrNotClaimable = errors.New("cloud: nothing to claim: no card-less purchase with this op ID, or it was reversed")
	// ErrAlreadyClaimed: the purchase was credited to a card before.
	ErrAlreadyClaimed = errors.New("cloud: this purchase was already claimed")
	// ErrInvalidInput: an argument is empty, too long or malformed.
	ErrInvalidInput = errors.New("cloud: invalid input")
	// ErrStorageFull: the ledger's database had no room to write; the
	// transaction was rolled back and nothing changed. A terminal keeps
	// its batch and sends it again; the operator must free space on the
	// database's volume (or raise PostgreSQL's). The Ledger logs it, at
	// most once a minute, so that its callers need not.
	ErrStorageFull = errors.New("cloud: the ledger's storage is full; nothing was written")
	// ErrUnavailable: the ledger's database did not answer, or its
	// connection broke as a transaction committed, so whether it did is
	// not known. Sending the same request again is safe: a batch resent
	// is applied once, or answered as the replay of the batch applied.
	ErrUnavailable = errors.New("cloud: the ledger's database did not answer; send the request again later")
)

// Sequence error kinds: why a batch does not continue its terminal's watermark.
const (
	// SeqGap: the batch starts after watermark+1; resend from watermark+1.
	SeqGap = "gap"
	// SeqRewind: the batch starts at or below the watermark and ends
	// above it. Cut at the watermark, its ops up to there are compared
	// with what the ledger holds.
	SeqRewind = "rewind"
	// SeqDiverged: the batch lies at or below the watermark, but the ledger
	// holds other ops at some of its sequences: the terminal's journal and
	// the ledger disagree about the epoch (a journal restored from a backup
	// with its sidecar, or a terminal ID used by two tills).
	SeqDiverged = "diverged"
	// SeqChain: the batch's previous-batch hash is not the hash of the last
	// batch applied for this terminal and epoch (or not empty for the first
	// batch of an epoch).
	SeqChain = "chain"
)

// Sentinels matched by SequenceError.Is, so callers can test the kind with errors.Is.
var (
	ErrGap      = errors.New("cloud: sequence gap")
	ErrRewind   = errors.New("cloud: sequence rewind")
	ErrDiverged = errors.New("cloud: the ledger holds other ops at these sequences")
	ErrChain    = errors.New("cloud: batch hash chain broken")
)

// SequenceError says a batch does not continue its terminal's journal where
// the ledger stands. Nothing was applied. The server answers 409 with
// Watermark, and the terminal re-seals its ops from Watermark+1.
type SequenceError struct {
	Kind      string // SeqGap, SeqRewind, SeqDiverged or SeqChain
	Terminal  string
	Epoch     uint32 // the batch's epoch
	Watermark uint64 // the highest sequence applied for Terminal in Epoch
	// LatestEpoch is the terminal's newest epoch the ledger has seen.
	LatestEpoch uint32
	First, Last uint64
	// LastHash is the hash of the batch that ended at Watermark (empty when
	// Watermark is 0): the previous hash the terminal's next batch must carry.
	LastHash []byte
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("cloud: terminal %s epoch %d: batch %d..%d: %s: ledger watermark is %d (latest epoch %d); resend from %d",
		e.Terminal, e.Epoch, e.First, e.Last, e.Kind, e.Watermark, e.LatestEpoch, e.Watermark+1)
}

// Is makes errors.Is(err, ErrGap) (and the other kinds) work.
func (e *SequenceError) Is(target error) bool {
	switch target {
	case ErrGap:
		return e.Kind == SeqGap
	case ErrRewind:
		return e.Kind == SeqRewind
	case ErrDiverged:
		return e.Kind == SeqDiverged
	case ErrChain:
		return e.Kind == SeqChain
	}
	return false
}
