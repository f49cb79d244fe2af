package loyalty

import (
	"crypto/ed25519"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A purchase made without a card is journaled as an earn with no card, so
// the cloud knows the receipt before anyone claims it. Its receipt carries a
// claim token in a QR code: the receipt ID, the op ID, the points and an
// expiry, signed with the terminal's Ed25519 key. The cloud credits a claim
// once, before it expires (ClaimWindow after the purchase).
//
// The token is "TPC1:" followed by unpadded upper-case base32 of
//
//	version (1 byte) | op ID (16) | points (uvarint) | expiry (uint32 Unix seconds, big-endian)
//	| receipt length (1) | receipt | Ed25519 signature (64)
//
// The signature covers claimDomain followed by every byte before it. Every
// character of the token is in the QR alphanumeric set, so a token for a
// receipt ID of up to 64 bytes fits a version 8 QR code at error correction
// level M, and a typical one (a receipt ID of about 16 bytes) a version 6.

// ClaimWindow is how long after the purchase a claim token stays valid.
const ClaimWindow = 30 * 24 * time.Hour

// ClaimPrefix starts every claim token; the number is the token version.
const ClaimPrefix = "TPC1:"

const (
	claimVersion = 1
	claimDomain  = "tillpoint claim v1\x00"
	// claimMaxBody bounds the signed part: version, op ID, a 10-byte varint,
	// expiry, the length byte and a MaxFieldLen receipt ID.
	claimMaxBody = 1 + 16 + binary.MaxVarintLen64 + 4 + 1 + MaxFieldLen
)

var claimEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Claim errors. Every error VerifyClaim and ParseClaim return wraps one of these.
var (
	// ErrInvalidClaim reports a token that is not a claim token at all:
	// wrong prefix, bad base32, truncated or trailing bytes, bad fields.
	ErrInvalidClaim = errors.New("loyalty: invalid claim token")
	// ErrClaimSignature reports a well-formed token that the given
	// terminal key did not sign: forged, altered, or the wrong terminal.
	ErrClaimSignature = errors.New("loyalty: claim token signature does not verify")
	// ErrClaimExpired reports a genuine token presented after its expiry.
	ErrClaimExpired = errors.New("loyalty: claim token expired")
)

// Claim is what a claim token says: the points of one cardless purchase.
type Claim struct {
	Receipt string
	Op      OpID
	Points  Points
	// Expires is when the claim lapses, to the second.
	Expires time.Time
}

// NewClaim returns the claim for a cardless earn op: its receipt, ID and
// points, expiring ClaimWindow after the op's wall time.
func NewClaim(op *Op) Claim {
	return Claim{
		Receipt: op.Receipt,
		Op:      op.ID,
		Points:  op.Points,
		Expires: op.WallTime.Add(ClaimWindow).Truncate(time.Second).UTC(),
	}
}

// Validate checks the fields a token can carry.
func (c Claim) Validate() error {
	switch {
	case c.Op.IsZero():
		return fmt.Errorf("%w: no op id", ErrInvalidClaim)
	case c.Points <= 0:
		return fmt.Errorf("%w: points must be positive, got %d", ErrInvalidClaim, c.Points)
	case len(c.Receipt) > MaxFieldLen:
		return fmt.Errorf("%w: receipt id longer than %d bytes", ErrInvalidClaim, MaxFieldLen)
	case c.Expires.Unix() <= 0 || c.Expires.Unix() > 1<<32-1:
		return fmt.Errorf("%w: expiry %s out of range", ErrInvalidClaim, c.Expires)
	}
	return nil
}

// SignClaim returns the claim token for c signed with the terminal's key.
func SignClaim(key ed25519.PrivateKey, c Claim) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("sign claim: terminal key is %d bytes, want an Ed25519 private key of %d", len(key), ed25519.PrivateKeySize)
	}
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("sign claim: %w", err)
	}
	body := make([]byte, 0, claimMaxBody+ed25519.SignatureSize)
	body = append(body, claimVersion)
	body = append(body, c.Op[:]...)
	body = binary.AppendUvarint(body, uint64(c.Points))
	body = binary.BigEndian.AppendUint32(body, uint32(c.Expires.Unix()))
	body = append(body, byte(len(c.Receipt)))
	body = append(body, c.Receipt...)
	body = append(body, ed25519.Sign(key, claimMessage(body))...)
	return ClaimPrefix + claimEncoding.EncodeToString(body), nil
}

// ParseClaim decodes a token WITHOUT checking its signature or expiry. It
// is for finding which terminal's key to verify with (the op names its
// terminal); never credit points on its word: use VerifyClaim.
func ParseClaim(token string) (Claim, error) {
	c, _, _, err := parseClaim(token)
	return c, err
}

// VerifyClaim checks that token is a well-formed claim signed by key and
// not expired at now, and returns its claim. Errors wrap ErrInvalidClaim,
// ErrClaimSignature or ErrClaimExpired.
func VerifyClaim(key ed25519.PublicKey, token string, now time.Time) (Claim, error) {
	c, signed, sig, err := parseClaim(token)
	if err != nil {
		return Claim{}, err
	}
	if len(key) != ed25519.PublicKeySize {
		return Claim{}, fmt.Errorf("verify claim: terminal key is %d bytes, want an Ed25519 public key of %d", len(key), ed25519.PublicKeySize)
	}
	if !ed25519.Verify(key, claimMessage(signed), sig) {
		return Claim{}, fmt.Errorf("%w: receipt %q op %s; check the token was read whole and the terminal key is the right one", ErrClaimSignature, c.Receipt, c.Op)
	}
	if !now.Before(c.Expires) {
		return Claim{}, fmt.Errorf("%w: receipt %q expired at %s", ErrClaimExpired, c.Receipt, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

func claimMessage(body []byte) []byte {
	return append([]byte(claimDomain), body...)
}

func parseClaim(token string) (c Claim, signed, sig []byte, err error) {
	bad := func(format string, args ...any) (Claim, []byte, []byte, error) {
		return Claim{}, nil, nil, fmt.Errorf("%w: %s", ErrInvalidClaim, fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(token, ClaimPrefix)
	if !ok {
		return bad("does not start with %q", ClaimPrefix)
	}
	if len(rest) > claimEncoding.EncodedLen(claimMaxBody+ed25519.SignatureSize) {
		return bad("%d characters, too long for a claim", len(token))
	}
	raw, err := claimEncoding.DecodeString(rest)
	if err != nil {
		return bad("not base32: %v", err)
	}
	// A canonical token re-encodes to itself: no trailing bits set.
	if claimEncoding.EncodeToString(raw) != rest {
		return bad("not canonical base32")
	}
	if len(raw) < 1+16+1+4+1+ed25519.SignatureSize {
		return bad("%d bytes, too short", len(raw))
	}
	signed, sig = raw[:len(raw)-ed25519.SignatureSize], raw[len(raw)-ed25519.SignatureSize:]
	if signed[0] != claimVersion {
		return bad("version %d, this build reads %d", signed[0], claimVersion)
	}
	copy(c.Op[:], signed[1:17])
	p := signed[17:]
	points, n := binary.Uvarint(p)
	if n <= 0 || points > 1<<62 || len(binary.AppendUvarint(nil, points)) != n {
		return bad("points field is not a canonical varint")
	}
	c.Points = Points(points)
	p = p[n:]
	if len(p) < 5 {
		return bad("truncated after points")
	}
	c.Expires = time.Unix(int64(binary.BigEndian.Uint32(p)), 0).UTC()
	rlen := int(p[4])
	p = p[5:]
	if len(p) != rlen {
		return bad("receipt id is %d bytes, %d follow", rlen, len(p))
	}
	c.Receipt = string(p)
	if err := c.Validate(); err != nil {
		return Claim{}, nil, nil, err
	}
	return c, signed, sig, nil
}
