package peers

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Wire names of the serf user event and query this package uses.
const (
	EventName = "tp.redeem"
	QueryName = "tp.card"
)

// Sizes of the wire format.
const (
	// MaxTerminalLen is the longest terminal ID, as in loyalty.MaxFieldLen.
	MaxTerminalLen = loyalty.MaxFieldLen
	// eventVersion is the first byte of every event.
	eventVersion = 1
	// eventFixedLen is everything but the terminal ID and the signature:
	// version, card hash, op ID, points, epoch, seq, time, terminal length.
	eventFixedLen = 1 + 32 + 16 + 8 + 4 + 8 + 8 + 1
	// MaxEventLen is the longest encoded event, well inside serf's 512-byte
	// user event limit together with EventName and serf's own framing.
	MaxEventLen = eventFixedLen + MaxTerminalLen + ed25519.SignatureSize
)

// signContext separates these signatures from any other use of a terminal
// key (batches are COSE_Sign1 with their own AAD) and binds them to a store.
const signContext = "tillpoint/peers/redeem/v1\x00"

// PeerRedeem is a redeem a terminal of the store made while it could not
// reach the cloud: what its event says and what a peer's journal records.
type PeerRedeem struct {
	Op       loyalty.OpID
	Card     loyalty.CardHash
	Points   loyalty.Points // points redeemed, greater than zero
	Terminal string
	Epoch    uint32
	Seq      uint64
	// At is the terminal's wall clock, to the millisecond: recorded, never
	// trusted for order or expiry.
	At time.Time
}

// RedeemFromOp returns the PeerRedeem an offline redeem op announces.
func RedeemFromOp(op *loyalty.Op) (PeerRedeem, error) {
	if op.Kind != loyalty.OpRedeem || !op.Offline {
		return PeerRedeem{}, fmt.Errorf("%w: op %s is a %s (offline=%t); only offline redeems are announced",
			ErrNotOfflineRedeem, op.ID, op.Kind, op.Offline)
	}
	r := PeerRedeem{
		Op: op.ID, Card: op.Card, Points: -op.Points, Terminal: op.Terminal,
		Epoch: op.Epoch, Seq: op.Seq, At: op.WallTime.Truncate(time.Millisecond).UTC(),
	}
	if err := r.Validate(); err != nil {
		return PeerRedeem{}, err
	}
	return r, nil
}

// Validate checks the fields every announced redeem needs.
func (r *PeerRedeem) Validate() error {
	switch {
	case r.Op.IsZero():
		return fmt.Errorf("%w: no op id", ErrMalformed)
	case r.Card.IsZero():
		return fmt.Errorf("%w: op %s: no card", ErrMalformed, r.Op)
	case r.Points <= 0 || r.Points > loyalty.MaxOpPoints:
		return fmt.Errorf("%w: op %s: redeems %d points, want 1 to %d", ErrMalformed, r.Op, r.Points, loyalty.MaxOpPoints)
	case r.At.IsZero():
		return fmt.Errorf("%w: op %s: no time", ErrMalformed, r.Op)
	}
	if err := validTerminalID(r.Terminal); err != nil {
		return fmt.Errorf("%w: op %s: %w", ErrMalformed, r.Op, err)
	}
	return nil
}

// Event is a signed PeerRedeem as it travels between terminals.
type Event struct {
	Redeem PeerRedeem
	// Raw is the exact encoded event, signature included.
	Raw []byte
}

// SignEvent encodes r and signs it with the terminal's key for store.
func SignEvent(store string, r PeerRedeem, key ed25519.PrivateKey) (Event, error) {
	if err := r.Validate(); err != nil {
		return Event{}, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return Event{}, fmt.Errorf("%w: terminal key is %d bytes, want %d; re-enroll the terminal", ErrConfig, len(key), ed25519.PrivateKeySize)
	}
	body := appendBody(make([]byte, 0, MaxEventLen), r)
	sig := ed25519.Sign(key, signedMessage(store, body))
	raw := append(body, sig...)
	return Event{Redeem: r, Raw: raw}, nil
}

// DecodeEvent parses an encoded event strictly (version, exact length,
// field ranges) without checking its signature; see VerifyEvent.
func DecodeEvent(raw []byte) (PeerRedeem, error) {
	var r PeerRedeem
	if len(raw) < eventFixedLen+1+ed25519.SignatureSize || len(raw) > MaxEventLen {
		return r, fmt.Errorf("%w: event of %d bytes, want %d to %d", ErrMalformed, len(raw), eventFixedLen+1+ed25519.SignatureSize, MaxEventLen)
	}
	if raw[0] != eventVersion {
		return r, fmt.Errorf("%w: event version %d, want %d; upgrade this terminal", ErrMalformed, raw[0], eventVersion)
	}
	b := raw[1:]
	copy(r.Card[:], b[:32])
	b = b[32:]
	copy(r.Op[:], b[:16])
	b = b[16:]
	pts := binary.BigEndian.Uint64(b)
	b = b[8:]
	r.Epoch = binary.BigEndian.Uint32(b)
	b = b[4:]
	r.Seq = binary.BigEndian.Uint64(b)
	b = b[8:]
	ms := int64(binary.BigEndian.Uint64(b))
	b = b[8:]
	tlen := int(b[0])
	b = b[1:]
	if len(b) != tlen+ed25519.SignatureSize {
		return PeerRedeem{}, fmt.Errorf("%w: event says a %d-byte terminal id but has %d bytes left", ErrMalformed, tlen, len(b)-ed25519.SignatureSize)
	}
	r.Terminal = string(b[:tlen])
	r.Points = loyalty.Points(pts) // Validate refuses what is out of range, negative here included
	if ms <= 0 {
		return PeerRedeem{}, fmt.Errorf("%w: op %s: time out of range", ErrMalformed, r.Op)
	}
	r.At = time.UnixMilli(ms).UTC()
	if err := r.Validate(); err != nil {
		return PeerRedeem{}, err
	}
	return r, nil
}

// VerifyEvent decodes raw and checks its signature against the roster's key
// for the terminal it names, bound to store.
func VerifyEvent(store string, roster *Roster, raw []byte) (PeerRedeem, error) {
	r, err := DecodeEvent(raw)
	if err != nil {
		return PeerRedeem{}, err
	}
	pub, ok := roster.Key(r.Terminal)
	if !ok {
		return PeerRedeem{}, fmt.Errorf("%w: %q (op %s); refresh the roster if the till was enrolled recently", ErrUnknownTerminal, r.Terminal, r.Op)
	}
	body, sig := raw[:len(raw)-ed25519.SignatureSize], raw[len(raw)-ed25519.SignatureSize:]
	if !ed25519.Verify(pub, signedMessage(store, body), sig) {
		return PeerRedeem{}, fmt.Errorf("%w: event for op %s claims terminal %q", ErrBadSignature, r.Op, r.Terminal)
	}
	return r, nil
}

func appendBody(b []byte, r PeerRedeem) []byte {
	b = append(b, eventVersion)
	b = append(b, r.Card[:]...)
	b = append(b, r.Op[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Points))
	b = binary.BigEndian.AppendUint32(b, r.Epoch)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.At.UnixMilli()))
	b = append(b, byte(len(r.Terminal)))
	return append(b, r.Terminal...)
}

func signedMessage(store string, body []byte) []byte {
	m := make([]byte, 0, len(signContext)+len(store)+1+len(body))
	m = append(m, signContext...)
	m = append(m, store...)
	m = append(m, 0)
	return append(m, body...)
}
