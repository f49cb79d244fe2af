package agent

import (
	"errors"
	"fmt"
)

// Code classifies an agent error; only the HTTP layer turns codes into
// statuses.
type Code string

// Error codes.
const (
	CodeInvalid            Code = "invalid"             // the request is malformed
	CodeNoCard             Code = "no_card"             // no card given and no session open
	CodeUnknownCard        Code = "unknown_card"        // no snapshot of the card on this terminal
	CodeInsufficientPoints Code = "insufficient_points" // the balance does not cover a redeem
	CodeOfflineCapReached  Code = "offline_cap_reached" // offline redeems of the card used up
	CodeSnapshotTooOld     Code = "snapshot_too_old"    // the card's snapshot is too old to redeem offline
	CodeNotFound           Code = "not_found"           // no such op or reward
	CodeAlreadyReversed    Code = "already_reversed"    // a void of an op already voided
	CodeConflict           Code = "conflict"            // a request in flight, a card already enrolled
	CodeKeyReused          Code = "key_reused"          // an idempotency key sent again with another request
	CodeNoRules            Code = "no_rules"            // no rules cached yet
	CodeUnavailable        Code = "unavailable"         // the journal failed; nothing was recorded
	CodeInternal           Code = "internal"
)

// Error is an error with a code and a message a cashier can read.
type Error struct {
	Code    Code
	Message string
	Err     error // the cause, for logs; may be nil
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, CodeInternal when it has none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the cashier-readable message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Something went wrong on this till; nothing was recorded. Try again, and call support if it keeps happening."
}

// Refusals of the offline policy. A Journal's CheckRedeem returns errors
// that match these with errors.Is; the agent turns them into *Error with a
// message for the cashier.
var (
	ErrUnknownCard        = errors.New("unknown card")
	ErrInsufficientPoints = errors.New("insufficient points")
	ErrOfflineCapReached  = errors.New("offline redeem cap reached")
	ErrSnapshotTooOld     = errors.New("member snapshot too old")
	// ErrDuplicateOp from Append means the op is already durable (an
	// earlier attempt succeeded); the agent treats it as success.
	ErrDuplicateOp = errors.New("op already recorded")
	// ErrDuplicateRequest from AppendRequest means the key already made an
	// op, which is durable; nothing was appended.
	ErrDuplicateRequest = errors.New("request already recorded")
)

// Cashier messages.
const (
	msgUnknownCardOffline = "Card not known offline: points will be added when the store is back online."
	msgUnknownCardRedeem  = "Card not known on this till yet: points cannot be spent until the store is back online."
	msgInsufficient       = "Not enough points for this reward: the card has %d, the reward needs %d."
	msgOfflineCap         = "Offline limit reached for this card: more points can be spent when the store is back online."
	msgSnapshotTooOld     = "This till has not seen this card's balance for too long: points can be spent when the store is back online."
	msgJournalFailed      = "Nothing was recorded: this till cannot save right now (%s). Do not retry with another till; call support."
)

const msgUnknownCardOnline = "New card on this till: its points will show on the balance once the loyalty server confirms them."

var errNoRules = &Error{Code: CodeNoRules, Message: "This till has no points rules yet: it must reach the loyalty server once. Check the network, then retry."}
