package batch

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Limits of a batch. The cloud caps the request body at MaxBatchBytes
// before it parses anything; the uplink cuts batches well below both.
const (
	MaxBatchBytes = 4 << 20
	MaxBatchOps   = 4096
)

// Hash identifies a batch: the SHA-256 of its payload, the bytes the
// signature covers. The next batch of the epoch names it in Prev (the
// chain), and the cloud compares it to tell a retry from a conflict.
type Hash [32]byte

// IsZero reports whether h is the zero hash (no previous batch).
func (h Hash) IsZero() bool { return h == Hash{} }

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short returns the first 8 hex digits, for logs.
func (h Hash) Short() string { return hex.EncodeToString(h[:4]) }

// Batch is a run of one terminal's journal ops, sequences First..Last of
// one epoch, without gaps.
type Batch struct {
	Terminal string
	Epoch    uint32
	First    uint64
	Last     uint64
	// Prev is the Hash of the batch of this epoch that ended at First-1
	// (the cloud's acks name it as LastHash), zero for an epoch's first
	// batch. The cloud refuses a batch whose Prev is not the hash of the
	// last batch it applied for the terminal and epoch.
	Prev Hash
	// RulesVersion is the newest rules version the terminal holds.
	RulesVersion uint32
	// Ops are in sequence order; each op's Terminal and Epoch equal the
	// batch's and its Seq is First plus its index.
	Ops []loyalty.Op
}

// Validate checks the shape of a batch: the signer, the sequence range,
// the ops' terminal, epoch and sequence, the op count and unique op IDs.
// It does not run loyalty.Op.Validate: an op the ledger finds invalid is
// rejected on its own in the ack, not with its whole batch.
func (b *Batch) Validate() error {
	switch {
	case b.Terminal == "" || len(b.Terminal) > maxIDLen:
		return fmt.Errorf("terminal id must be 1 to %d bytes", maxIDLen)
	case len(b.Ops) == 0:
		return fmt.Errorf("a batch holds at least one op")
	case len(b.Ops) > MaxBatchOps:
		return fmt.Errorf("%d ops, at most %d in a batch", len(b.Ops), MaxBatchOps)
	case b.First == 0:
		return fmt.Errorf("sequences start at 1")
	case b.Last < b.First || b.Last-b.First+1 != uint64(len(b.Ops)):
		return fmt.Errorf("sequences %d..%d do not match %d ops", b.First, b.Last, len(b.Ops))
	}
	seen := make(map[loyalty.OpID]struct{}, len(b.Ops))
	for i := range b.Ops {
		o := &b.Ops[i]
		switch {
		case o.Terminal != b.Terminal:
			return fmt.Errorf("op %d: terminal %q in a batch of %q", i, o.Terminal, b.Terminal)
		case o.Epoch != b.Epoch:
			return fmt.Errorf("op %d: epoch %d in a batch of epoch %d", i, o.Epoch, b.Epoch)
		case o.Seq != b.First+uint64(i):
			return fmt.Errorf("op %d: sequence %d, want %d (no gaps inside a batch)", i, o.Seq, b.First+uint64(i))
		case o.ID.IsZero():
			return fmt.Errorf("op %d: no op id", i)
		}
		if _, dup := seen[o.ID]; dup {
			return fmt.Errorf("op %d: op id %s appears twice", i, o.ID)
		}
		seen[o.ID] = struct{}{}
	}
	return nil
}

// Sealed is a batch as it goes on the wire: the exact bytes to store and
// to send (and to send again, unchanged, on every retry), and its hash.
type Sealed struct {
	Bytes []byte
	Hash  Hash
}

// SealBatch validates b, encodes it and signs it. The signer's name must be
// the batch's terminal.
func (s *Signer) SealBatch(b *Batch) (Sealed, error) {
	if b.Terminal != s.name {
		return Sealed{}, fmt.Errorf("batch: seal batch: terminal %q, signer %q", b.Terminal, s.name)
	}
	if err := b.Validate(); err != nil {
		return Sealed{}, fmt.Errorf("batch: seal batch %d..%d: %w", b.First, b.Last, err)
	}
	// The header goes through the wire struct with no ops; the ops are
	// mapped one at a time into a reused wire op and appended.
	w := wireBatch{Terminal: b.Terminal, Epoch: b.Epoch, First: b.First, Last: b.Last, Prev: bytesOrNil(b.Prev[:]), RulesVersion: b.RulesVersion}
	hint := 64
	for i := range b.Ops {
		hint += 160
		if b.Ops[i].Basket != nil {
			hint += 48 * len(b.Ops[i].Basket.Lines)
		}
	}
	encode := func(buf []byte) []byte {
		buf = w.appendHeader(buf)
		buf = appendHead(buf, 4, uint64(len(b.Ops)))
		var wo wireOp
		var scratch wireBasket
		for i := range b.Ops {
			fillWireOp(&wo, &b.Ops[i], &scratch)
			buf = wo.appendCBOR(buf)
		}
		return buf
	}
	sealed, payload, err := s.sealWith(TypeBatch, s.KeyID(b.Epoch), hint, encode)
	if err != nil {
		return Sealed{}, fmt.Errorf("batch: seal batch: %w", err)
	}
	if len(sealed) > MaxBatchBytes {
		return Sealed{}, fmt.Errorf("batch: seal batch %d..%d: %d bytes, more than the cloud takes (%d); cut smaller batches", b.First, b.Last, len(sealed), MaxBatchBytes)
	}
	return Sealed{Bytes: sealed, Hash: sha256.Sum256(payload)}, nil
}

// HashOf returns the Hash of sealed bytes made by SealBatch, without
// verifying them (the terminal's own outbox, say).
func HashOf(sealed []byte) (Hash, error) {
	e, err := ParseEnvelope(sealed, MaxBatchBytes)
	if err != nil {
		return Hash{}, err
	}
	return sha256.Sum256(e.payload), nil
}

// OpenBatch parses, verifies and decodes a batch from the network with the
// terminal's public key: the whole sequence the package doc describes. The
// caller looks the key up by ParseEnvelope's KeyID first; OpenBatch is
// ParseEnvelope(data, MaxBatchBytes) then Envelope.OpenBatch.
func OpenBatch(data []byte, program string, pub ed25519.PublicKey) (*Batch, Hash, error) {
	e, err := ParseEnvelope(data, MaxBatchBytes)
	if err != nil {
		return nil, Hash{}, err
	}
	return e.OpenBatch(program, pub)
}

// OpenBatch verifies the envelope's signature with pub under program, then
// decodes the batch strictly (decode.go: one pass that checks the encoding
// is the deterministic one as it reads) and checks it against the kid.
func (e *Envelope) OpenBatch(program string, pub ed25519.PublicKey) (*Batch, Hash, error) {
	if err := e.verify(TypeBatch, program, pub); err != nil {
		return nil, Hash{}, err
	}
	b, err := decodeBatch(e.payload)
	if err != nil {
		return nil, Hash{}, err
	}
	if b.Terminal != e.KeyID.Signer || b.Epoch != e.KeyID.Epoch {
		return nil, Hash{}, fail(ErrKeyMismatch, nil, "payload terminal %q epoch %d, kid %s", b.Terminal, b.Epoch, e.KeyID)
	}
	if err := b.Validate(); err != nil {
		return nil, Hash{}, fail(ErrInvalid, nil, "%v", err)
	}
	return b, sha256.Sum256(e.payload), nil
}
