package cloud

import (
	"crypto/ed25519"
	"crypto/sha256"
	"time"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// MaxStoreTerminals is how many terminals a store may enroll, revoked ones
// included: as many as its signed roster carries.
const MaxStoreTerminals = batch.MaxRosterTerminals

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
	// Addr is the terminal's gossip address (host:port) for its store's
	// peers, as it said at enrollment; empty when it said none.
	Addr string
	// FirstEpoch, set by Enroll only, is the lowest journal epoch the
	// enrolled terminal may write in: one above any epoch the ledger holds
	// for its ID (1 for a new ID). A till enrolled in another's place, with
	// a journal of its own, then never sends ops under sequence numbers the
	// ledger holds the other till's ops at.
	FirstEpoch uint32
}

// TerminalKey is what a terminal registers when it enrolls.
type TerminalKey struct {
	PublicKey ed25519.PublicKey
	KeyID     string
	// Addr is the terminal's gossip address (host:port), optional.
	Addr string
}

// GossipKeySize is the size of a store's gossip key (AES-256).
const GossipKeySize = 32

// StoreRoster is what the terminals of one store must know of each other:
// every terminal ever enrolled there (revoked ones marked), and the keyring
// that encrypts the store's gossip.
type StoreRoster struct {
	Store string
	// Version grows with every change to the terminals or the keyring.
	Version   uint64
	Terminals []Terminal
	// GossipKeys is the keyring, the primary first, then the keys retired
	// by a rotation (newest first) until they are removed.
	GossipKeys []GossipKey
}

// GossipKey is one key of a store's gossip keyring: a secret.
type GossipKey struct {
	Key     []byte
	AddedAt time.Time
	// RetiredAt is when a rotation replaced it as the primary; zero for
	// the primary.
	RetiredAt time.Time
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
