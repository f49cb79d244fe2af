package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"
)

// Ledger is what the server needs of the cloud ledger.
type Ledger interface {
	// CreateEnrollCode makes a one-time code that enrolls terminal at store
	// until expires.
	CreateEnrollCode(ctx context.Context, store, terminal string, expires time.Time) (string, error)
	// Enroll spends code, registering pub as the terminal's key.
	Enroll(ctx context.Context, code string, pub ed25519.PublicKey, now time.Time) (Terminal, error)
	// RevokeTerminal stops accepting the terminal's batches.
	RevokeTerminal(ctx context.Context, terminal string) error
	// Terminal returns a registered terminal.
	Terminal(ctx context.Context, id string) (Terminal, error)
}

// Terminal is a registered terminal.
type Terminal struct {
	ID        string
	Store     string
	PublicKey ed25519.PublicKey
	Revoked   bool
}

// Codec opens signed batches and seals the cloud's replies.
type Codec interface{}

// Errors the ledger returns. They stand in for the cloud package's errors
// until it lands on main.
var (
	ErrUnknownTerminal  = errors.New("unknown terminal")
	ErrTerminalRevoked  = errors.New("terminal revoked")
	ErrEnrollCodeBad    = errors.New("enrollment code unknown")
	ErrEnrollCodeUsed   = errors.New("enrollment code used")
	ErrEnrollCodeExpire = errors.New("enrollment code expired")
)

// classify maps the ledger's and the codec's errors to problems.
func classify(err error) *Problem {
	switch {
	case errors.Is(err, ErrUnknownTerminal):
		return problem(CodeUnknownTerminal, "the terminal is not enrolled; enroll it with a code from 'tillpoint cloud enroll-code'")
	case errors.Is(err, ErrTerminalRevoked):
		return problem(CodeTerminalRevoked, "the terminal was revoked; enroll a replacement with a new code")
	case errors.Is(err, ErrEnrollCodeBad):
		return problem(CodeEnrollCodeBad, "no such enrollment code; check it or ask the operator for a new one")
	case errors.Is(err, ErrEnrollCodeUsed):
		return problem(CodeEnrollCodeUsed, "the code has been used; ask the operator for a new one")
	case errors.Is(err, ErrEnrollCodeExpire):
		return problem(CodeEnrollCodeExpire, "the code has expired; ask the operator for a new one")
	}
	return nil
}
