package batch

import "crypto/ed25519"

// The enrollment exchange (POST /v1/enroll) is JSON, not COSE: the
// terminal has no enrolled key yet and proves it holds its new one with
// Proof instead. Terminals in the field send and read these documents, so
// a field's JSON name never changes; testdata/enroll holds the bytes they
// expect.

// EnrollRequest is the body of POST /v1/enroll: a one-time code, the
// terminal's new public key, and Proof, the key's signature over
// EnrollProofMessage(Code, PublicKey), which shows the terminal holds the
// private key.
type EnrollRequest struct {
	Code      string `json:"code"`
	PublicKey []byte `json:"public_key"`
	Proof     []byte `json:"proof"`
	// Advertise is the till's gossip address (IP:PORT) for its store's
	// roster; optional.
	Advertise string `json:"advertise,omitempty"`
	// BoxKey is an X25519 public key the store's secrets (card key, gossip
	// keyring) are sealed to in the reply; optional (no secrets then).
	BoxKey []byte `json:"box_key,omitempty"`
}

// EnrollResponse is the reply to POST /v1/enroll: who the terminal now is,
// and the cloud key it must check every ack, snapshot and rules set against.
type EnrollResponse struct {
	Program        string `json:"program"`
	Store          string `json:"store"`
	Terminal       string `json:"terminal"`
	TerminalKeyID  string `json:"terminal_key_id"`
	CloudPublicKey []byte `json:"cloud_public_key"`
	CloudKeyID     string `json:"cloud_key_id"`
	// Roster is the store's roster as GET /v1/roster serves it (COSE_Sign1
	// by the cloud key, see OpenRoster), its secrets sealed to BoxKey.
	Roster []byte `json:"roster,omitempty"`
	// Epoch is the lowest journal epoch the terminal may write in: one
	// above any the cloud holds for the terminal ID, so that a till
	// enrolled in another's place starts where the other's ops end.
	// Absent (0) from clouds that predate it.
	Epoch uint32 `json:"epoch,omitempty"`
}

// EnrollProofMessage is what a terminal signs with its new key when it
// enrolls (POST /v1/enroll), to show the cloud it holds the private key.
func EnrollProofMessage(code string, pub ed25519.PublicKey) []byte {
	msg := append([]byte("tillpoint enroll v1\n"), code...)
	msg = append(msg, '\n')
	return append(msg, pub...)
}
