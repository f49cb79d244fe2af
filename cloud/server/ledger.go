package server

import (
	"context"
	"crypto/ed25519"
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

// classify maps the ledger's and the codec's errors to problems.
func classify(err error) *Problem { return nil }
