package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Problem codes: stable strings that clients switch on. Never rename one;
// add a new code instead.
const (
	CodeInvalidRequest   = "invalid_request"
	CodeBodyTooLarge     = "body_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeMalformedBatch   = "malformed_batch"
	CodeNotCanonical     = "not_canonical"
	CodeBadAlgorithm     = "bad_algorithm"
	CodeInvalidBatch     = "invalid_batch"
	CodeNoRules          = "no_rules"
	CodeRulesConflict    = "rules_conflict"
	CodeInvalidRules     = "invalid_rules"
	CodeBadSignature     = "bad_signature"
	CodeUnknownTerminal  = "unknown_terminal"
	CodeTerminalRevoked  = "terminal_revoked"
	CodeKeyMismatch      = "key_mismatch"
	CodeSequenceGap      = "sequence_gap"
	CodeSequenceRewind   = "sequence_rewind"
	CodeSequenceDiverged = "sequence_diverged"
	CodeBatchConflict    = "batch_conflict"
	CodeUnauthorized     = "unauthorized"
	CodeAdminDisabled    = "admin_disabled"
	CodeEnrollCodeBad    = "enroll_code_invalid"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnavailable      = "unavailable"
	CodeStorageFull      = "storage_full"
	CodeInternal         = "internal"
)

// statusOf maps a problem code to its HTTP status. Only this package turns
// codes into statuses.
var statusOf = map[string]int{
	CodeInvalidRequest:   http.StatusBadRequest,
	CodeBodyTooLarge:     http.StatusRequestEntityTooLarge,
	CodeUnsupportedMedia: http.StatusUnsupportedMediaType,
	CodeMalformedBatch:   http.StatusBadRequest,
	CodeNotCanonical:     http.StatusBadRequest,
	CodeBadAlgorithm:     http.StatusBadRequest,
	CodeInvalidBatch:     http.StatusUnprocessableEntity,
	CodeNoRules:          http.StatusNotFound,
	CodeRulesConflict:    http.StatusConflict,
	CodeInvalidRules:     http.StatusUnprocessableEntity,
	CodeBadSignature:     http.StatusForbidden,
	CodeUnknownTerminal:  http.StatusForbidden,
	CodeTerminalRevoked:  http.StatusForbidden,
	CodeKeyMismatch:      http.StatusForbidden,
	CodeSequenceGap:      http.StatusConflict,
	CodeSequenceRewind:   http.StatusConflict,
	CodeSequenceDiverged: http.StatusConflict,
	CodeBatchConflict:    http.StatusConflict,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeAdminDisabled:    http.StatusForbidden,
	CodeEnrollCodeBad:    http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeStorageFull:      http.StatusServiceUnavailable,
	CodeInternal:         http.StatusInternalServerError,
}

// titles are the short, fixed summaries of each code (RFC 9457 "title").
var titles = map[string]string{
	CodeInvalidRequest:   "The request is not valid",
	CodeBodyTooLarge:     "The request body is too large",
	CodeUnsupportedMedia: "The request has the wrong content type",
	CodeMalformedBatch:   "The batch is not a well-formed signed batch",
	CodeNotCanonical:     "The message is not in its canonical encoding",
	CodeBadAlgorithm:     "The signature algorithm is not accepted",
	CodeInvalidBatch:     "The batch contradicts itself",
	CodeNoRules:          "No rules are published yet",
	CodeRulesConflict:    "That rules version is published with other content",
	CodeInvalidRules:     "The rules cannot be evaluated",
	CodeBadSignature:     "The signature does not verify",
	CodeUnknownTerminal:  "The terminal is not enrolled",
	CodeTerminalRevoked:  "The terminal has been revoked",
	CodeKeyMismatch:      "The key ID does not match the terminal's registered key",
	CodeSequenceGap:      "The batch skips sequence numbers",
	CodeSequenceRewind:   "The batch rewinds an epoch's sequence",
	CodeSequenceDiverged: "The ledger holds other ops at the batch's sequences",
	CodeBatchConflict:    "The batch conflicts with what was applied",
	CodeUnauthorized:     "Credentials missing or wrong",
	CodeAdminDisabled:    "The admin API is disabled",
	CodeEnrollCodeBad:    "The enrollment code is unknown, used or expired",
	CodeNotFound:         "Not found",
	CodeMethodNotAllowed: "The route does not take this method",
	CodeUnavailable:      "The service is unavailable, retry later",
	CodeStorageFull:      "The ledger's storage is full, retry later",
	CodeInternal:         "Internal error",
}

// Problem is an RFC 9457 problem details document. Code is our stable
// extension member; Watermark and LastHash are set when a batch does not
// continue where the ledger stands (sequence gap, rewind, broken chain), so
// the terminal knows where to re-seal from and which previous hash to name.
type Problem struct {
	Type      string  `json:"type"`
	Title     string  `json:"title"`
	Status    int     `json:"status"`
	Detail    string  `json:"detail,omitempty"`
	Code      string  `json:"code"`
	Terminal  string  `json:"terminal,omitempty"`
	Epoch     *uint32 `json:"epoch,omitempty"`
	Watermark *uint64 `json:"watermark,omitempty"`
	// LastHash is the hex hash of the batch that ended at Watermark.
	LastHash string `json:"last_hash,omitempty"`
	// RetryAfter, in seconds, is sent as the Retry-After header too.
	RetryAfter int `json:"retry_after,omitempty"`
	// challenge is the WWW-Authenticate header of a 401: what the caller
	// must authenticate with.
	challenge string
}

// The challenges of a 401: the admin API's bearer token, a terminal's
// signed request.
const (
	adminChallenge    = `Bearer realm="tillpoint-admin"`
	terminalChallenge = `Tillpoint-Signature realm="tillpoint-terminal"`
)

// ProblemContentType is the media type of a problem document.
const ProblemContentType = "application/problem+json"

// Error lets a Problem travel as an error inside the server.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Code + ": " + p.Detail
	}
	return p.Code + ": " + p.Title
}

// problem returns a problem for code with a detail that tells the client
// what to do next.
func problem(code, format string, args ...any) *Problem {
	status, ok := statusOf[code]
	if !ok {
		code, status = CodeInternal, http.StatusInternalServerError
	}
	p := &Problem{
		Type:   "https://tillpoint.dev/problems/" + code,
		Title:  titles[code],
		Status: status,
		Detail: fmt.Sprintf(format, args...),
		Code:   code,
	}
	if status == http.StatusServiceUnavailable {
		p.RetryAfter = unavailableRetryAfter
	}
	return p
}

// Retry-After, in seconds, of a 503: a halted or full ledger needs an
// operator; a busy one only a moment; a database that does not answer
// may be restarting.
const (
	unavailableRetryAfter = 30
	busyRetryAfter        = 2
	unreachableRetryAfter = 5
)

// writeProblem writes p as the response.
func writeProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	if p.challenge != "" {
		h.Set("WWW-Authenticate", p.challenge)
	}
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// asProblem returns the problem err carries, classifying the errors of the
// ledger and the codec; anything unknown is an internal error whose detail
// does not leak internals.
func asProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return problem(CodeBodyTooLarge, "the body exceeds %d bytes; send smaller batches", tooLarge.Limit)
	}
	if p := classify(err); p != nil {
		return p
	}
	return problem(CodeInternal, "the server failed to handle the request; it has been logged")
}
