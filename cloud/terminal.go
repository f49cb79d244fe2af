package cloud

import (
	"crypto/ed25519"
	"crypto/sha256"
	"time"
)

// TerminalStatus is whether a terminal's batches are accepted.
type TerminalStatus string

const (
	TerminalActive  TerminalStatus = "active"
	TerminalRevoked TerminalStatus = "revoked"
)

// Terminal is an enrolled store terminal and the key it signs batches with.
type Terminal struct {
	ID         string
	Store      string
	PublicKey  ed25519.PublicKey
	KeyID      string
	Status     TerminalStatus
	EnrolledAt time.Time
	RevokedAt  time.Time // zero unless revoked
}

// TerminalKey is what a terminal registers when it enrolls.
type TerminalKey struct {
	PublicKey ed25519.PublicKey
	KeyID     string
}

// EnrollCode is a one-time code an operator makes for one terminal of a
// store. The ledger keeps only HashEnrollCode(Code).
type EnrollCode struct {
	Code     string
	Store    string
	Terminal string
	Expires  time.Time
	Created  time.Time
}

// HashEnrollCode is how codes are stored and looked up: a code is a secret
// and never sits in the database in the clear.
func HashEnrollCode(code string) []byte {
	sum := sha256.Sum256([]byte("tillpoint enroll code\x00" + code))
	return sum[:]
}
