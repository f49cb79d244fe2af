package batch

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// TypeRoster is the content type of the cloud's signed store roster
// (GET /v1/roster and the enrollment reply).
const TypeRoster = "application/vnd.tillpoint.roster+cbor"

// Limits of a roster document.
const (
	MaxRosterTerminals = 1024
	MaxRosterBytes     = 256 << 10
	// MaxEnrollResponseBytes bounds the JSON enrollment reply, which
	// carries a roster of up to MaxRosterBytes in base64.
	MaxEnrollResponseBytes = MaxRosterBytes*4/3 + 16<<10
	// MaxGossipKeys bounds a store's keyring: the primary and the keys
	// still in their grace period after a rotation.
	MaxGossipKeys = 8
	// GossipKeySize is the size of a store's gossip key (AES-256).
	GossipKeySize = 32
)

var rosterDecMode = mustDecMode(limits{nested: 4, array: MaxRosterTerminals, mapPairs: 16})

// RosterDoc is a store's roster as the cloud signs it: the store's
// terminals (with their gossip addresses and Ed25519 keys) and, sealed to
// the terminal that asked, the store's secrets.
type RosterDoc struct {
	Store string
	// Version grows with every change to the store's roster or keyring;
	// a terminal refuses a document older than the one it holds.
	Version uint64
	Issued  time.Time
	// Terminal is the terminal the document was issued to: Secrets are
	// sealed to it, and another terminal must not take the document.
	Terminal  string
	Terminals []RosterTerminal
	// Secrets is SealSecrets' output for Terminal; empty when the cloud
	// sends none.
	Secrets []byte
}

// RosterTerminal is one terminal of a store's roster.
type RosterTerminal struct {
	ID        string
	Addr      string // gossip address host:port; empty when not known
	PublicKey ed25519.PublicKey
	Revoked   bool
}

// Validate checks the shape of a roster document.
func (d *RosterDoc) Validate() error {
	switch {
	case d.Store == "" || len(d.Store) > maxIDLen:
		return fmt.Errorf("store id must be 1 to %d bytes", maxIDLen)
	case d.Terminal == "" || len(d.Terminal) > maxIDLen:
		return fmt.Errorf("terminal id must be 1 to %d bytes", maxIDLen)
	case len(d.Terminals) > MaxRosterTerminals:
		return fmt.Errorf("%d terminals, at most %d", len(d.Terminals), MaxRosterTerminals)
	case len(d.Secrets) > 4096:
		return fmt.Errorf("sealed secrets of %d bytes, at most 4096", len(d.Secrets))
	}
	seen := make(map[string]bool, len(d.Terminals))
	for i, t := range d.Terminals {
		keyErr := loyalty.CheckSigningKey(t.PublicKey)
		switch {
		case t.ID == "" || len(t.ID) > maxIDLen:
			return fmt.Errorf("terminal %d: id must be 1 to %d bytes", i, maxIDLen)
		case seen[t.ID]:
			return fmt.Errorf("terminal %q listed twice", t.ID)
		case keyErr != nil:
			return fmt.Errorf("terminal %q: %w", t.ID, keyErr)
		case len(t.Addr) > 300:
			return fmt.Errorf("terminal %q: address longer than 300 bytes", t.ID)
		}
		seen[t.ID] = true
	}
	return nil
}

type wireRoster struct {
	Store     string               `cbor:"1,keyasint"`
	Version   uint64               `cbor:"2,keyasint"`
	Issued    int64                `cbor:"3,keyasint"`
	Terminal  string               `cbor:"4,keyasint"`
	Terminals []wireRosterTerminal `cbor:"5,keyasint,omitempty"`
	Secrets   []byte               `cbor:"6,keyasint,omitempty"`
}

type wireRosterTerminal struct {
	ID        string `cbor:"1,keyasint"`
	Addr      string `cbor:"2,keyasint,omitempty"`
	PublicKey []byte `cbor:"3,keyasint"`
	Revoked   bool   `cbor:"4,keyasint,omitempty"`
}

// SealRoster validates and signs a roster document with the cloud's key.
func (s *Signer) SealRoster(d *RosterDoc) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("batch: seal roster: %w", err)
	}
	w := wireRoster{Store: d.Store, Version: d.Version, Issued: nanos(d.Issued), Terminal: d.Terminal, Secrets: d.Secrets}
	for _, t := range d.Terminals {
		w.Terminals = append(w.Terminals, wireRosterTerminal{ID: t.ID, Addr: t.Addr, PublicKey: t.PublicKey, Revoked: t.Revoked})
	}
	payload, err := encMode.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("batch: encode roster: %w", err)
	}
	if len(payload) > MaxRosterBytes-256 {
		return nil, fmt.Errorf("batch: seal roster: %d bytes, more than an agent takes (%d)", len(payload), MaxRosterBytes)
	}
	b, err := s.seal(TypeRoster, s.KeyID(0), payload)
	if err != nil {
		return nil, fmt.Errorf("batch: seal roster: %w", err)
	}
	return b, nil
}

// OpenRoster parses, verifies with the cloud's key and decodes a roster
// document. It does not open the secrets (see OpenSecrets) and does not
// check the document is meant for the caller: compare Store and Terminal.
func OpenRoster(data []byte, program string, cloud ed25519.PublicKey) (*RosterDoc, error) {
	e, err := openCloudDoc(data, MaxRosterBytes, TypeRoster, program, cloud)
	if err != nil {
		return nil, err
	}
	var w wireRoster
	if err := decodePayload(rosterDecMode, e.payload, &w); err != nil {
		return nil, err
	}
	d := &RosterDoc{Store: w.Store, Version: w.Version, Issued: fromNanos(w.Issued), Terminal: w.Terminal, Secrets: w.Secrets}
	for _, t := range w.Terminals {
		d.Terminals = append(d.Terminals, RosterTerminal{ID: t.ID, Addr: t.Addr, PublicKey: ed25519.PublicKey(t.PublicKey), Revoked: t.Revoked})
	}
	if err := d.Validate(); err != nil {
		return nil, fail(ErrInvalid, nil, "roster: %v", err)
	}
	return d, nil
}

// Secrets are what a terminal must keep from everyone else: the program's
// card hash key and its store's gossip keyring (primary first).
type Secrets struct {
	CardKey    []byte
	GossipKeys [][]byte
}

// Validate checks the sizes of the secrets.
func (s *Secrets) Validate() error {
	if n := len(s.CardKey); n != 0 && (n < 16 || n > 64) {
		return fmt.Errorf("card key of %d bytes, want 16 to 64", n)
	}
	if len(s.GossipKeys) > MaxGossipKeys {
		return fmt.Errorf("%d gossip keys, at most %d", len(s.GossipKeys), MaxGossipKeys)
	}
	for i, k := range s.GossipKeys {
		if len(k) != GossipKeySize {
			return fmt.Errorf("gossip key %d of %d bytes, want %d", i+1, len(k), GossipKeySize)
		}
	}
	return nil
}

type wireSecrets struct {
	CardKey    []byte   `cbor:"1,keyasint,omitempty"`
	GossipKeys [][]byte `cbor:"2,keyasint,omitempty"`
}

type wireBox struct {
	Ephemeral  []byte `cbor:"1,keyasint"`
	Ciphertext []byte `cbor:"2,keyasint"`
}

var secretsDecMode = mustDecMode(limits{nested: 4, array: 16, mapPairs: 16})

// secretsInfo binds a sealed box to the program, the terminal and both
// X25519 keys, so it opens nowhere else.
func secretsInfo(program, terminal string, eph, to []byte) []byte {
	b := []byte("tillpoint/secrets/v1\x00" + program + "\x00" + terminal + "\x00")
	b = append(b, eph...)
	return append(b, to...)
}

// ParseBoxKey reads a terminal's X25519 public key for SealSecrets: 32
// bytes, not a low-order point (ErrBoxKey), checked with a trial key
// exchange so that a caller can refuse the key before it acts on the
// request.
func ParseBoxKey(b []byte) (*ecdh.PublicKey, error) {
	to, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBoxKey, err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("batch: box key: %w", err)
	}
	if _, err := eph.ECDH(to); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBoxKey, err)
	}
	return to, nil
}

// SealSecrets encrypts s to the terminal's X25519 key (ECDH with a fresh
// ephemeral key, HKDF-SHA-256, AES-256-GCM), so the secrets stay secret
// even where TLS ends before the cloud. Only the holder of the private key
// for to, asking as terminal of program, can open it.
func SealSecrets(to *ecdh.PublicKey, program, terminal string, s *Secrets) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("batch: seal secrets: %w", err)
	}
	if to == nil || to.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("batch: seal secrets: want an X25519 recipient key")
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("batch: seal secrets: %w", err)
	}
	shared, err := eph.ECDH(to)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBoxKey, err)
	}
	info := secretsInfo(program, terminal, eph.PublicKey().Bytes(), to.Bytes())
	aead, err := secretsAEAD(shared, info)
	if err != nil {
		return nil, err
	}
	plain, err := encMode.Marshal(&wireSecrets{CardKey: s.CardKey, GossipKeys: s.GossipKeys})
	if err != nil {
		return nil, fmt.Errorf("batch: encode secrets: %w", err)
	}
	// The key is used once (fresh ephemeral key): a zero nonce is safe.
	nonce := make([]byte, aead.NonceSize())
	box := wireBox{Ephemeral: eph.PublicKey().Bytes(), Ciphertext: aead.Seal(nil, nonce, plain, info)}
	b, err := encMode.Marshal(&box)
	if err != nil {
		return nil, fmt.Errorf("batch: encode sealed secrets: %w", err)
	}
	return b, nil
}

// OpenSecrets decrypts what SealSecrets sealed to priv's public key for
// terminal of program. A box for another key, terminal or program, or a
// changed byte, is ErrSignature.
func OpenSecrets(priv *ecdh.PrivateKey, program, terminal string, sealed []byte) (*Secrets, error) {
	var box wireBox
	if err := decodePayload(secretsDecMode, sealed, &box); err != nil {
		return nil, err
	}
	ephPub, err := ecdh.X25519().NewPublicKey(box.Ephemeral)
	if err != nil {
		return nil, fail(ErrMalformed, err, "sealed secrets: ephemeral key")
	}
	shared, err := priv.ECDH(ephPub)
	if err != nil {
		return nil, fail(ErrInvalid, err, "sealed secrets")
	}
	info := secretsInfo(program, terminal, box.Ephemeral, priv.PublicKey().Bytes())
	aead, err := secretsAEAD(shared, info)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, make([]byte, aead.NonceSize()), box.Ciphertext, info)
	if err != nil {
		return nil, fail(ErrSignature, err, "sealed secrets do not open with this terminal's key")
	}
	var w wireSecrets
	if err := decodePayload(secretsDecMode, plain, &w); err != nil {
		return nil, err
	}
	s := &Secrets{CardKey: w.CardKey, GossipKeys: w.GossipKeys}
	if err := s.Validate(); err != nil {
		return nil, fail(ErrInvalid, nil, "secrets: %v", err)
	}
	return s, nil
}

func secretsAEAD(shared, info []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, shared, nil, string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("batch: derive secrets key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("batch: secrets cipher: %w", err)
	}
	return cipher.NewGCM(block)
}
