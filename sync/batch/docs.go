package batch

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Limits of the cloud's documents for GET /v1/snapshots and GET /v1/rules.
// A store with more cards than MaxSnapshots is served in pages (Next).
const (
	MaxSnapshots        = 50000
	MaxSnapshotSetBytes = 32 << 20
	MaxRulesBytes       = 1 << 20
)

var (
	snapshotsDecMode = mustDecMode(limits{nested: 6, array: MaxSnapshots, mapPairs: 32})
	rulesDecMode     = mustDecMode(limits{nested: 4, array: 16, mapPairs: 16})
)

// SnapshotSet is a page of signed member snapshots for the cards a store
// has seen, for the terminal's cache.
type SnapshotSet struct {
	Store     string
	AsOf      time.Time
	Snapshots []loyalty.Snapshot
	// Next is an opaque cursor for the next page; empty on the last page.
	Next         string
	RulesVersion uint32
}

// Validate checks the shape of a snapshot set.
func (s *SnapshotSet) Validate() error {
	switch {
	case s.Store == "" || len(s.Store) > maxIDLen:
		return fmt.Errorf("store id must be 1 to %d bytes", maxIDLen)
	case len(s.Snapshots) > MaxSnapshots:
		return fmt.Errorf("%d snapshots, at most %d a page", len(s.Snapshots), MaxSnapshots)
	case len(s.Next) > 256:
		return fmt.Errorf("cursor longer than 256 bytes")
	}
	for i := range s.Snapshots {
		if s.Snapshots[i].Card.IsZero() {
			return fmt.Errorf("snapshot %d: no card", i)
		}
		if len(s.Snapshots[i].Expiring) > maxExpiring {
			return fmt.Errorf("snapshot %d: %d expiring entries, at most %d", i, len(s.Snapshots[i].Expiring), maxExpiring)
		}
	}
	return nil
}

// SealSnapshots validates and signs a snapshot set with the cloud's key.
func (s *Signer) SealSnapshots(set *SnapshotSet) ([]byte, error) {
	if err := set.Validate(); err != nil {
		return nil, fmt.Errorf("batch: seal snapshots: %w", err)
	}
	w := wireSnapshotSet{Store: set.Store, AsOf: nanos(set.AsOf), Snapshots: toWireSnapshots(set.Snapshots), Next: set.Next, RulesVersion: set.RulesVersion}
	payload, err := encMode.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("batch: encode snapshots: %w", err)
	}
	if len(payload) > MaxSnapshotSetBytes-256 {
		return nil, fmt.Errorf("batch: seal snapshots: %d bytes, more than an agent takes (%d); serve smaller pages", len(payload), MaxSnapshotSetBytes)
	}
	b, err := s.seal(TypeSnapshots, s.KeyID(0), payload)
	if err != nil {
		return nil, fmt.Errorf("batch: seal snapshots: %w", err)
	}
	return b, nil
}

// OpenSnapshots parses, verifies with the cloud's key and decodes a snapshot set.
func OpenSnapshots(data []byte, program string, cloud ed25519.PublicKey) (*SnapshotSet, error) {
	e, err := openCloudDoc(data, MaxSnapshotSetBytes, TypeSnapshots, program, cloud)
	if err != nil {
		return nil, err
	}
	var w wireSnapshotSet
	if err := decodePayload(snapshotsDecMode, e.payload, &w); err != nil {
		return nil, err
	}
	set := &SnapshotSet{Store: w.Store, AsOf: fromNanos(w.AsOf), Next: w.Next, RulesVersion: w.RulesVersion}
	if set.Snapshots, err = fromWireSnapshots(w.Snapshots); err != nil {
		return nil, err
	}
	if err := set.Validate(); err != nil {
		return nil, fail(ErrInvalid, nil, "snapshots: %v", err)
	}
	return set, nil
}

// RulesDoc is one version of the program's rules as the cloud publishes
// them: the canonical JSON of loyalty.Rules, which Hash covers.
type RulesDoc struct {
	Rules  loyalty.Rules
	Hash   string // hex SHA-256 of the canonical JSON (loyalty.Rules.Hash)
	Issued time.Time
}

// SealRules validates r and signs its canonical form with the cloud's key.
// The rules' Program must be the signer's program.
func (s *Signer) SealRules(r *loyalty.Rules, issued time.Time) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("batch: seal rules: %w", err)
	}
	if r.Program != s.program {
		return nil, fmt.Errorf("batch: seal rules: rules of program %q, signer of %q", r.Program, s.program)
	}
	canon, err := r.Canonical()
	if err != nil {
		return nil, fmt.Errorf("batch: seal rules: %w", err)
	}
	sum := sha256.Sum256(canon)
	payload, err := encMode.Marshal(&wireRules{Program: r.Program, Version: r.Version, Hash: sum[:], Canonical: canon, Issued: nanos(issued)})
	if err != nil {
		return nil, fmt.Errorf("batch: encode rules: %w", err)
	}
	if len(payload) > MaxRulesBytes-256 {
		return nil, fmt.Errorf("batch: seal rules: %d bytes, more than an agent takes (%d)", len(payload), MaxRulesBytes)
	}
	b, err := s.seal(TypeRules, s.KeyID(0), payload)
	if err != nil {
		return nil, fmt.Errorf("batch: seal rules: %w", err)
	}
	return b, nil
}

// OpenRules parses, verifies with the cloud's key and decodes signed rules:
// the JSON must be canonical, match its hash, name the program, and validate.
func OpenRules(data []byte, program string, cloud ed25519.PublicKey) (*RulesDoc, error) {
	e, err := openCloudDoc(data, MaxRulesBytes, TypeRules, program, cloud)
	if err != nil {
		return nil, err
	}
	var w wireRules
	if err := decodePayload(rulesDecMode, e.payload, &w); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(w.Canonical)
	if !bytes.Equal(sum[:], w.Hash) {
		return nil, fail(ErrInvalid, nil, "rules hash does not match their canonical form")
	}
	dec := json.NewDecoder(bytes.NewReader(w.Canonical))
	dec.DisallowUnknownFields()
	doc := &RulesDoc{Issued: fromNanos(w.Issued)}
	if err := dec.Decode(&doc.Rules); err != nil {
		return nil, fail(ErrMalformed, err, "rules json")
	}
	if dec.More() {
		return nil, fail(ErrMalformed, nil, "rules json: trailing data")
	}
	if canon, err := doc.Rules.Canonical(); err != nil || !bytes.Equal(canon, w.Canonical) {
		return nil, fail(ErrNotCanonical, err, "rules json")
	}
	if doc.Rules.Program != program || doc.Rules.Program != w.Program || doc.Rules.Version != w.Version {
		return nil, fail(ErrInvalid, nil, "rules of program %q version %d in a document for %q version %d", doc.Rules.Program, doc.Rules.Version, w.Program, w.Version)
	}
	if err := doc.Rules.Validate(); err != nil {
		return nil, fail(ErrInvalid, err, "rules")
	}
	doc.Hash = fmt.Sprintf("%x", sum)
	return doc, nil
}

func openCloudDoc(data []byte, max int, ct, program string, cloud ed25519.PublicKey) (*Envelope, error) {
	e, err := ParseEnvelope(data, max)
	if err != nil {
		return nil, err
	}
	if e.KeyID.Signer != CloudSigner {
		return nil, fail(ErrKeyMismatch, nil, "signed by %q, not %q", e.KeyID.Signer, CloudSigner)
	}
	if err := e.verify(ct, program, cloud); err != nil {
		return nil, err
	}
	return e, nil
}
