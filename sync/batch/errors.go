package batch

import (
	"errors"
	"fmt"
)

// The reasons a message is refused. Every error of the Open* functions is
// an *Error that wraps exactly one of them; test with errors.Is.
var (
	// ErrTooLarge: the message is larger than its cap. The sender must cut
	// smaller batches.
	ErrTooLarge = errors.New("message too large")
	// ErrMalformed: not well-formed CBOR, not a COSE_Sign1, or a payload
	// that does not fit its schema (unknown field, wrong type, duplicate
	// key, indefinite length, tag, too deep, too many elements).
	ErrMalformed = errors.New("malformed message")
	// ErrNotCanonical: well-formed but not the one deterministic encoding.
	ErrNotCanonical = errors.New("message not in canonical encoding")
	// ErrAlgorithm: the protected header names an algorithm other than EdDSA.
	ErrAlgorithm = errors.New("signature algorithm not accepted")
	// ErrHeader: the COSE headers are not exactly alg, kid and content type
	// in the protected header, or the kid cannot be read.
	ErrHeader = errors.New("bad message header")
	// ErrContentType: the message is another kind of message (an ack sent
	// where a batch is expected...).
	ErrContentType = errors.New("wrong content type")
	// ErrSignature: the signature does not verify with the key the kid
	// names under this program and protocol version.
	ErrSignature = errors.New("signature does not verify")
	// ErrKeyMismatch: the payload's signer or epoch differs from the kid's.
	ErrKeyMismatch = errors.New("payload does not match the signing key id")
	// ErrInvalid: signed and well-formed, but the content breaks the
	// message's rules (sequence gap inside a batch, repeated op ID, a
	// count above its limit...).
	ErrInvalid = errors.New("invalid message content")
)

// ErrBoxKey reports a recipient key that secrets cannot be sealed to (see
// ParseBoxKey): not 32 bytes, or a low-order X25519 point, which makes the
// shared secret zero.
var ErrBoxKey = errors.New("not an X25519 public key that secrets can be sealed to")

// Error is a refused message: Reason is one of the sentinel errors above,
// Detail says what exactly was wrong, Err is the underlying cause if any.
type Error struct {
	Reason error
	Detail string
	Err    error
}

func (e *Error) Error() string {
	s := "batch: " + e.Reason.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the reason and the cause, so errors.Is finds either.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

func fail(reason error, err error, format string, args ...any) *Error {
	return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...), Err: err}
}

// Code returns a stable machine-readable name for the reason of err, for a
// problem document or a metric label: "too_large", "malformed",
// "not_canonical", "algorithm", "header", "content_type", "signature",
// "key_mismatch", "invalid"; "" when err is not one of ours.
func Code(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{ErrTooLarge, "too_large"},
		{ErrMalformed, "malformed"},
		{ErrNotCanonical, "not_canonical"},
		{ErrAlgorithm, "algorithm"},
		{ErrHeader, "header"},
		{ErrContentType, "content_type"},
		{ErrSignature, "signature"},
		{ErrKeyMismatch, "key_mismatch"},
		{ErrInvalid, "invalid"},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}
