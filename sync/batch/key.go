package batch

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/veraison/go-cose"

	"github.com/tillpoint/tillpoint/loyalty"
)

// ProtocolVersion is the version of this wire format. It is bound into
// every signature through the external AAD, so a message signed for one
// version never verifies under another.
const ProtocolVersion = 1

// ContentType is the HTTP media type of every sealed message.
const ContentType = `application/cose; cose-type="cose-sign1"`

// The COSE content types of our messages (protected header label 3).
const (
	TypeBatch     = "application/vnd.tillpoint.batch+cbor"
	TypeAck       = "application/vnd.tillpoint.ack+cbor"
	TypeSnapshots = "application/vnd.tillpoint.snapshots+cbor"
	TypeRules     = "application/vnd.tillpoint.rules+cbor"
)

// CloudSigner is the Signer name of the cloud's key in a KeyID.
const CloudSigner = "cloud"

// KeyID is a message's COSE kid: who signed it (a terminal ID, or
// CloudSigner), which of its keys (Fingerprint of the public key, so a
// re-enrolled terminal's new key is told apart from the old one) and, for a
// batch, the journal epoch it belongs to. On the wire it is the
// deterministic CBOR array [signer, key, epoch] in a byte string.
type KeyID struct {
	Signer string
	Key    string
	Epoch  uint32
}

type wireKeyID struct {
	_      struct{} `cbor:",toarray"`
	Signer string
	Key    string
	Epoch  uint32
}

func (k KeyID) String() string {
	return k.Signer + "/" + k.Key + "/" + strconv.FormatUint(uint64(k.Epoch), 10)
}

func (k KeyID) validate() error {
	if err := loyalty.CheckName("signer", k.Signer); err != nil {
		return err
	}
	if len(k.Key) != fingerprintLen {
		return fmt.Errorf("key fingerprint must be %d hex digits", fingerprintLen)
	}
	if _, err := hex.DecodeString(k.Key); err != nil {
		return fmt.Errorf("key fingerprint must be %d hex digits", fingerprintLen)
	}
	return nil
}

func (k KeyID) marshal() ([]byte, error) {
	return encMode.Marshal(wireKeyID{Signer: k.Signer, Key: k.Key, Epoch: k.Epoch})
}

func parseKeyID(b []byte) (KeyID, error) {
	var w wireKeyID
	if err := headerDecMode.Unmarshal(b, &w); err != nil {
		return KeyID{}, err
	}
	k := KeyID{Signer: w.Signer, Key: w.Key, Epoch: w.Epoch}
	if err := k.validate(); err != nil {
		return KeyID{}, err
	}
	return k, nil
}

const (
	maxIDLen       = 64
	fingerprintLen = 16
)

// Fingerprint names a public key: the first 8 bytes of its SHA-256 in hex.
// The cloud stores it next to the key it registers at enrollment.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:fingerprintLen/2])
}

// AAD returns the external additional authenticated data of every message
// of program: the deterministic CBOR array ["tillpoint", ProtocolVersion,
// program].
func AAD(program string) []byte {
	b := []byte{0x83} // array of 3
	b = appendHead(b, 3, uint64(len("tillpoint")))
	b = append(b, "tillpoint"...)
	b = appendHead(b, 0, ProtocolVersion)
	b = appendHead(b, 3, uint64(len(program)))
	return append(b, program...)
}

// Signer seals messages with one Ed25519 key for one program: a terminal
// (Name is its terminal ID) or the cloud (Name is CloudSigner). It is safe
// for concurrent use.
type Signer struct {
	name    string
	program string
	key     ed25519.PrivateKey
	fp      string
	aad     []byte
	signer  cose.Signer
}

// NewSigner returns a Signer for the given name and program.
func NewSigner(name, program string, key ed25519.PrivateKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("batch: new signer: an Ed25519 private key is %d bytes, got %d", ed25519.PrivateKeySize, len(key))
	}
	if program == "" {
		return nil, fmt.Errorf("batch: new signer: program ID is empty; set it from the enrollment")
	}
	pub := key.Public().(ed25519.PublicKey)
	s := &Signer{name: name, program: program, key: key, fp: Fingerprint(pub), aad: AAD(program)}
	if err := (KeyID{Signer: name, Key: s.fp}).validate(); err != nil {
		return nil, fmt.Errorf("batch: new signer %q: %v", name, err)
	}
	cs, err := cose.NewSigner(cose.AlgorithmEdDSA, key)
	if err != nil {
		return nil, fmt.Errorf("batch: new signer: %w", err)
	}
	s.signer = cs
	return s, nil
}

// Name returns the signer's name (terminal ID or CloudSigner).
func (s *Signer) Name() string { return s.name }

// Program returns the program ID bound into every signature.
func (s *Signer) Program() string { return s.program }

// Public returns the public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID returns the kid this signer writes for the given epoch.
func (s *Signer) KeyID(epoch uint32) KeyID { return KeyID{Signer: s.name, Key: s.fp, Epoch: epoch} }
