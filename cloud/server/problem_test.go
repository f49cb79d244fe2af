package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// TestEveryErrorHasAStableCodeAndStatus checks the one place where domain
// errors become HTTP: each maps to its code, every code has a status and a
// title, and nothing unknown leaks its text to the client.
func TestEveryErrorHasAStableCodeAndStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err    error
		code   string
		status int
	}{
		{fmt.Errorf("apply: %w", cloud.ErrTerminalRevoked), CodeTerminalRevoked, 403},
		{fmt.Errorf("terminal: %w", cloud.ErrUnknownTerminal), CodeUnknownTerminal, 403},
		{fmt.Errorf("rules: %w", cloud.ErrNotFound), CodeNotFound, 404},
		{cloud.ErrEnrollCode, CodeEnrollCodeBad, 403},
		{fmt.Errorf("apply: %w", cloud.ErrInvariant), CodeUnavailable, 503},
		{fmt.Errorf("apply: %w: database or disk is full", cloud.ErrStorageFull), CodeStorageFull, 503},
		{fmt.Errorf("apply: %w: unexpected EOF", cloud.ErrUnavailable), CodeUnavailable, 503},
		{&cloud.SequenceError{Kind: cloud.SeqRewind, Watermark: 7}, CodeSequenceRewind, 409},
		{&cloud.SequenceError{Kind: cloud.SeqDiverged, Watermark: 7}, CodeSequenceDiverged, 409},
		{&cloud.SequenceError{Kind: cloud.SeqChain}, CodeBatchConflict, 409},
		{&cloud.SequenceError{Kind: cloud.SeqGap, Watermark: 3}, CodeSequenceGap, 409},
		{&batch.Error{Reason: batch.ErrSignature}, CodeBadSignature, 403},
		{&batch.Error{Reason: batch.ErrAlgorithm}, CodeBadAlgorithm, 400},
		{&batch.Error{Reason: batch.ErrNotCanonical}, CodeNotCanonical, 400},
		{&batch.Error{Reason: batch.ErrTooLarge}, CodeBodyTooLarge, 413},
		{&batch.Error{Reason: batch.ErrInvalid}, CodeInvalidBatch, 422},
		{errors.New("disk on fire at /var/lib/secret"), CodeInternal, 500},
	}
	for _, c := range cases {
		p := asProblem(c.err)
		if p.Code != c.code || p.Status != c.status {
			t.Errorf("%v: got %s %d, want %s %d", c.err, p.Code, p.Status, c.code, c.status)
		}
		if c.code == CodeInternal && p.Detail != "the server failed to handle the request; it has been logged" {
			t.Errorf("an internal error leaks its text: %q", p.Detail)
		}
	}
	if p := asProblem(&cloud.SequenceError{Kind: cloud.SeqRewind, Watermark: 7}); p.Watermark == nil || *p.Watermark != 7 {
		t.Errorf("a rewind problem carries watermark %v, want 7", p.Watermark)
	}
	for code, status := range statusOf {
		if status < 400 || titles[code] == "" {
			t.Errorf("code %s: status %d, title %q", code, status, titles[code])
		}
	}
	for _, err := range []error{cloud.ErrInvariant, cloud.ErrStorageFull, cloud.ErrUnavailable} {
		rec := httptest.NewRecorder()
		writeProblem(rec, asProblem(err))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%v: a 503 answers %d with Retry-After %q; the uplink needs one", err, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
}

// Every reason the ledger rejects an op for reaches the terminal as a code
// of its own: a reason without one used to arrive as "invalid", which
// tells the till and its log nothing.
func TestEveryRejectReasonHasItsOwnWireCode(t *testing.T) {
	reasons := []string{cloud.ReasonConflict, cloud.ReasonInvalid, cloud.ReasonUnknownTarget, cloud.ReasonAlreadyReversed,
		cloud.ReasonNotReversible, cloud.ReasonCardLinked, cloud.ReasonNoOwner}
	seen := map[batch.RejectCode]string{}
	for _, r := range reasons {
		code, ok := rejectCodes[r]
		if !ok {
			t.Errorf("ledger reason %q has no wire code", r)
			continue
		}
		if other, dup := seen[code]; dup {
			t.Errorf("ledger reasons %q and %q share wire code %v", r, other, code)
		}
		seen[code] = r
	}
}
