package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// Ledger is what the server needs of the cloud ledger (cloud.Ledger, as
// cloud/sqlstore implements it); see there for the errors each returns.
type Ledger interface {
	Ping(ctx context.Context) error
	CreateEnrollCode(ctx context.Context, c cloud.EnrollCode) error
	Enroll(ctx context.Context, code string, key cloud.TerminalKey, now time.Time) (cloud.Terminal, error)
	Terminal(ctx context.Context, id string) (cloud.Terminal, error)
	RevokeTerminal(ctx context.Context, id string, now time.Time) error
	StoreRoster(ctx context.Context, store string) (cloud.StoreRoster, error)
	RotateGossipKey(ctx context.Context, store string, key []byte, now time.Time) error
	RemoveRetiredGossipKeys(ctx context.Context, store string, cutoff time.Time) (int, error)
	CurrentRules(ctx context.Context) (loyalty.Rules, error)
	PublishRules(ctx context.Context, r loyalty.Rules, now time.Time) error
	Apply(ctx context.Context, b cloud.Batch) (cloud.Applied, error)
	Snapshots(ctx context.Context, store string, after loyalty.CardHash, limit int, now time.Time) ([]loyalty.Snapshot, error)
}

var _ Ledger = cloud.Ledger(nil)

// enrollCodeAlphabet is Crockford's base 32: no I, L, O or U to misread.
const enrollCodeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewEnrollCode returns a fresh one-time code of 100 random bits, written
// as five groups of four characters, e.g. "K7QF-2MXD-9RTA-WC3P-H4NB".
func NewEnrollCode() (string, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make enrollment code: %w", err)
	}
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(enrollCodeAlphabet[c%32])
	}
	return sb.String(), nil
}

// CreateEnrollCode makes a one-time code for terminal at store that works
// until expires, and stores it in ledger (only its hash is kept there).
func CreateEnrollCode(ctx context.Context, ledger Ledger, store, terminal string, now, expires time.Time) (cloud.EnrollCode, error) {
	for _, err := range []error{loyalty.CheckName("store", store), loyalty.CheckName("terminal", terminal)} {
		if err != nil {
			return cloud.EnrollCode{}, problem(CodeInvalidRequest, "%v: name stores and terminals with letters, digits and punctuation", err)
		}
	}
	code, err := NewEnrollCode()
	if err != nil {
		return cloud.EnrollCode{}, err
	}
	c := cloud.EnrollCode{Code: code, Store: store, Terminal: terminal, Expires: expires, Created: now}
	if err := ledger.CreateEnrollCode(ctx, c); err != nil {
		return cloud.EnrollCode{}, fmt.Errorf("store enrollment code: %w", err)
	}
	return c, nil
}

// NormalizeEnrollCode makes a typed code comparable: upper case, and the
// letters people confuse read as Crockford's base 32 does.
func NormalizeEnrollCode(code string) string {
	return strings.NewReplacer("I", "1", "L", "1", "O", "0").Replace(strings.ToUpper(strings.TrimSpace(code)))
}

// classify maps the ledger's and the wire format's errors to problems.
func classify(err error) *Problem {
	var seq *cloud.SequenceError
	if errors.As(err, &seq) {
		p := problem(CodeSequenceRewind, "%v", seq)
		switch seq.Kind {
		case cloud.SeqGap:
			p = problem(CodeSequenceGap, "the batch starts at %d; the ledger holds up to %d: resend from %d", seq.First, seq.Watermark, seq.Watermark+1)
		case cloud.SeqChain:
			p = problem(CodeBatchConflict, "the batch %d..%d does not name the last batch applied (up to %d, hash %s) as its previous one; re-seal it naming that hash (an epoch's first batch names none). If this terminal did not send that batch, its journal was altered or its key copied: revoke it",
				seq.First, seq.Last, seq.Watermark, shortHash(seq.LastHash))
		case cloud.SeqRewind:
			p = problem(CodeSequenceRewind, "the batch %d..%d reaches back below the ledger's watermark %d: cut it at %d so that its ops can be compared with those applied", seq.First, seq.Last, seq.Watermark, seq.Watermark)
		case cloud.SeqDiverged:
			p = problem(CodeSequenceDiverged, "the ledger holds other ops than the batch's at sequences %d..%d of epoch %d (watermark %d); nothing was applied. The till's journal and the ledger disagree: its journal was restored from a backup together with its epoch file, or another till was enrolled as this terminal. Stop the till and call support: its unsent ops stay in its journal ('tillpoint journal stats' counts them, 'tillpoint journal export' writes them out)",
				seq.First, seq.Last, seq.Epoch, seq.Watermark)
		}
		p.Terminal, p.Epoch, p.Watermark = seq.Terminal, &seq.Epoch, &seq.Watermark
		p.LastHash = hex.EncodeToString(seq.LastHash)
		return p
	}
	switch {
	case errors.Is(err, cloud.ErrUnknownTerminal):
		return problem(CodeUnknownTerminal, "the terminal is not enrolled; enroll it with a code from 'tillpoint cloud enroll-code'")
	case errors.Is(err, cloud.ErrNotFound):
		return problem(CodeNotFound, "%v", err)
	case errors.Is(err, cloud.ErrTerminalRevoked):
		return problem(CodeTerminalRevoked, "the terminal was revoked; enroll a replacement with a new code")
	case errors.Is(err, cloud.ErrEnrollCode):
		return problem(CodeEnrollCodeBad, "the code is unknown, used or expired; ask the operator for a new one")
	case errors.Is(err, cloud.ErrInvalidBatch):
		return problem(CodeInvalidBatch, "%v", err)
	case errors.Is(err, cloud.ErrRulesConflict):
		return problem(CodeRulesConflict, "that rules version is already published with other content; publish them as a new version")
	case errors.Is(err, loyalty.ErrInvalidRules):
		return problem(CodeInvalidRules, "%v", err)
	case errors.Is(err, cloud.ErrInvalidInput):
		return problem(CodeInvalidRequest, "%v", err)
	case errors.Is(err, cloud.ErrStorageFull):
		return problem(CodeStorageFull, "the ledger's database has no room to write: nothing was applied; keep the batch and send it again after the Retry-After delay")
	case errors.Is(err, cloud.ErrUnavailable):
		p := problem(CodeUnavailable, "the ledger's database did not answer; send the request again after the Retry-After delay: a batch sent again is applied once")
		p.RetryAfter = unreachableRetryAfter
		return p
	case errors.Is(err, cloud.ErrInvariant):
		return problem(CodeUnavailable, "the ledger halted a transaction that would have broken its books; the operator must run 'tillpoint cloud check'")
	}
	switch batch.Code(err) {
	case "too_large":
		return problem(CodeBodyTooLarge, "%v; cut smaller batches", err)
	case "malformed", "header":
		return problem(CodeMalformedBatch, "%v", err)
	case "not_canonical":
		return problem(CodeNotCanonical, "%v", err)
	case "algorithm":
		return problem(CodeBadAlgorithm, "%v", err)
	case "content_type":
		return problem(CodeUnsupportedMedia, "%v; send %s", err, batch.ContentType)
	case "signature":
		return problem(CodeBadSignature, "%v", err)
	case "key_mismatch":
		return problem(CodeKeyMismatch, "%v", err)
	case "invalid":
		return problem(CodeInvalidBatch, "%v", err)
	}
	return nil
}

// shortHash is the first 8 hex digits of a batch hash, for messages;
// "none" for an empty one.
func shortHash(h []byte) string {
	if len(h) == 0 {
		return "none"
	}
	return hex.EncodeToString(h[:min(4, len(h))])
}

// terminal looks up the terminal a request names; a terminal the ledger
// does not know is an unknown_terminal problem.
func (s *Server) terminal(ctx context.Context, id string) (cloud.Terminal, error) {
	t, err := s.Ledger.Terminal(ctx, id)
	if errors.Is(err, cloud.ErrNotFound) {
		return t, problem(CodeUnknownTerminal, "terminal %q is not enrolled; enroll it with a code from 'tillpoint cloud enroll-code'", id)
	}
	return t, err
}
