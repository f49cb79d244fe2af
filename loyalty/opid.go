package loyalty

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// OpID identifies an operation everywhere: a UUIDv7 (RFC 9562), so IDs made
// on a terminal sort roughly by creation time and never collide across terminals.
type OpID [16]byte

// NewOpID returns a UUIDv7 for time t with random bits from r (crypto/rand.Reader in production).
func NewOpID(t time.Time, r io.Reader) (OpID, error) {
	var id OpID
	if _, err := io.ReadFull(r, id[6:]); err != nil {
		return OpID{}, fmt.Errorf("op id: read random bits: %w", err)
	}
	ms := uint64(t.UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(id[0:6], ts[2:8])
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // RFC 9562 variant
	return id, nil
}

// IsZero reports whether id is unset.
func (id OpID) IsZero() bool { return id == OpID{} }

func (id OpID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return string(b[:])
}

// ParseOpID reads the canonical 36-character form.
func ParseOpID(s string) (OpID, error) {
	var id OpID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, fmt.Errorf("%w: op id %q is not a UUID", ErrInvalidOp, s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(id[:], []byte(h)); err != nil {
		return OpID{}, fmt.Errorf("%w: op id %q is not a UUID", ErrInvalidOp, s)
	}
	return id, nil
}

// MarshalText writes the canonical UUID form.
func (id OpID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads the canonical UUID form.
func (id *OpID) UnmarshalText(b []byte) error {
	v, err := ParseOpID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
