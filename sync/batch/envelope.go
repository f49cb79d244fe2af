package batch

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// The CBOR modes. They are immutable once built.
var (
	// encMode is the core deterministic encoding (RFC 8949 section 4.2.1).
	encMode = mustEncMode()
	// headerDecMode reads the envelope and its headers: tiny limits.
	headerDecMode = mustDecMode(limits{nested: 4, array: 16, mapPairs: 16})
)

type limits struct{ nested, array, mapPairs int }

func mustEncMode() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(fmt.Sprintf("batch: cbor encoding options: %v", err)) // constant options
	}
	return em
}

func mustDecMode(l limits) cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   l.nested,
		MaxArrayElements:  l.array,
		MaxMapPairs:       l.mapPairs,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("batch: cbor decoding options: %v", err)) // constant options
	}
	return dm
}

// protectedHeader is the only protected header we write or accept.
type protectedHeader struct {
	Alg         int64  `cbor:"1,keyasint"`
	ContentType string `cbor:"3,keyasint"`
	KID         []byte `cbor:"4,keyasint"`
}

// sign1 is the content of a COSE_Sign1_Tagged message.
type sign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[int64]cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

const coseTagSign1 = 0xd2 // tag 18, COSE_Sign1

var emptyMap = []byte{0xa0}

// seal signs payload as a COSE_Sign1 of content type ct with kid.
func (s *Signer) seal(ct string, kid KeyID, payload []byte) ([]byte, error) {
	out, _, err := s.sealWith(ct, kid, len(payload), func(b []byte) []byte { return append(b, payload...) })
	return out, err
}

// sealWith writes the payload with encode straight into the envelope's
// buffer (sizeHint is its expected length), signs it and returns the
// sealed message and the payload within it. The payload is not copied.
func (s *Signer) sealWith(ct string, kid KeyID, sizeHint int, encode func([]byte) []byte) (sealed, payload []byte, err error) {
	kidBytes, err := kid.marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("encode kid: %w", err)
	}
	protected, err := encMode.Marshal(protectedHeader{Alg: int64(cose.AlgorithmEdDSA), ContentType: ct, KID: kidBytes})
	if err != nil {
		return nil, nil, fmt.Errorf("encode protected header: %w", err)
	}
	prefix := 2 + 9 + len(protected) + 1 + 9
	buf := encode(make([]byte, prefix, prefix+sizeHint+2+ed25519.SignatureSize))
	payload = buf[prefix:]
	head := append([]byte{coseTagSign1, 0x84}, appendBstr(nil, protected)...)
	head = appendHead(append(head, emptyMap...), 2, uint64(len(payload)))
	out := buf[prefix-len(head):]
	copy(out, head)

	msg := cose.Sign1Message{
		Headers: cose.Headers{
			RawProtected:   appendBstr(nil, protected),
			Protected:      cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA, cose.HeaderLabelContentType: ct, cose.HeaderLabelKeyID: kidBytes},
			RawUnprotected: emptyMap,
		},
		Payload: payload,
	}
	if err := msg.Sign(nil, s.aad, s.signer); err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	return appendBstr(out, msg.Signature), payload, nil
}

// appendSign1 writes the one encoding of a COSE_Sign1_Tagged we accept.
func appendSign1(b, protected, payload, sig []byte) []byte {
	b = append(b, coseTagSign1, 0x84)
	b = appendHead(b, 2, uint64(len(protected)))
	b = append(b, protected...)
	b = append(b, emptyMap...)
	b = appendHead(b, 2, uint64(len(payload)))
	b = append(b, payload...)
	b = appendHead(b, 2, uint64(len(sig)))
	return append(b, sig...)
}

func appendBstr(b, v []byte) []byte {
	return append(appendHead(b, 2, uint64(len(v))), v...)
}

// appendHead appends a CBOR head of major type major with argument n in
// its shortest form.
func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

// Envelope is a COSE_Sign1 whose structure and headers have been checked
// but whose signature has not: read KeyID to find the key, then call one of
// the Open methods, which verify before they decode the payload.
type Envelope struct {
	// KeyID is the kid of the protected header.
	KeyID KeyID
	// ContentType says which message the payload claims to be.
	ContentType string

	protected []byte
	kid       []byte
	payload   []byte
	signature []byte
}

// ParseEnvelope checks the envelope of a sealed message strictly: at most
// max bytes, exactly the COSE_Sign1_Tagged this package writes, alg EdDSA,
// a readable kid, a content type and nothing else. It does not verify the
// signature.
//
// The Envelope refers to data, which must not change while it is in use.
func ParseEnvelope(data []byte, max int) (*Envelope, error) {
	if len(data) > max {
		return nil, fail(ErrTooLarge, nil, "%d bytes, at most %d", len(data), max)
	}
	if e, ok := parseOwnEnvelope(data); ok {
		return e, nil
	}
	return parseEnvelope(data)
}

// parseOwnEnvelope is ParseEnvelope's fast path: it reads data in place
// when it is exactly an envelope this package writes (Signer.sealWith),
// head by head in shortest form, and reports false for anything else,
// which parseEnvelope then examines for its specific error. It accepts a
// subset of what parseEnvelope does (FuzzOpenBatch holds it to that).
func parseOwnEnvelope(data []byte) (*Envelope, bool) {
	if len(data) < 2 || data[0] != coseTagSign1 || data[1] != 0x84 {
		return nil, false
	}
	r := reader{b: data, off: 2}
	ps, pe, err := r.span(majBytes, "protected")
	if err != nil || r.peek() != emptyMap[0] {
		return nil, false
	}
	r.off++
	ys, ye, err := r.span(majBytes, "payload")
	if err != nil {
		return nil, false
	}
	ss, se, err := r.span(majBytes, "signature")
	if err != nil || se-ss != ed25519.SignatureSize || r.off != len(data) {
		return nil, false
	}
	// The protected header: {1: -8 (EdDSA), 3: content type, 4: kid}.
	prot := data[ps:pe]
	h := reader{b: prot, str: string(prot)}
	if !bytes.HasPrefix(prot, []byte{0xa3, 0x01, 0x27, 0x03}) {
		return nil, false
	}
	h.off = 4
	ct, err := h.text("content type")
	if err != nil || ct == "" || h.peek() != 0x04 {
		return nil, false
	}
	h.off++
	ks, ke, err := h.span(majBytes, "kid")
	if err != nil || h.off != len(prot) || ke-ks < 1 || prot[ks] != 0x83 {
		return nil, false
	}
	// The kid: [signer, key fingerprint, epoch].
	k := reader{b: prot[:ke], str: h.str[:ke], off: ks + 1}
	signer, err1 := k.text("signer")
	key, err2 := k.text("key")
	epoch, err3 := k.uint(math.MaxUint32, "epoch")
	if err1 != nil || err2 != nil || err3 != nil || k.off != ke {
		return nil, false
	}
	kid := KeyID{Signer: signer, Key: key, Epoch: uint32(epoch)}
	if kid.validate() != nil {
		return nil, false
	}
	return &Envelope{KeyID: kid, ContentType: ct, protected: prot, kid: prot[ks:ke], payload: data[ys:ye], signature: data[ss:se]}, true
}

// parseEnvelope checks an envelope that is not exactly one of ours through
// fxamacker's strict decoding, to say what is wrong with it.
func parseEnvelope(data []byte) (*Envelope, error) {
	if len(data) < 2 || data[0] != coseTagSign1 {
		return nil, fail(ErrMalformed, nil, "not a tagged COSE_Sign1")
	}
	var raw sign1
	if err := headerDecMode.Unmarshal(data[1:], &raw); err != nil {
		return nil, fail(ErrMalformed, err, "cose envelope")
	}
	if len(raw.Unprotected) != 0 {
		return nil, fail(ErrHeader, nil, "the unprotected header must be empty")
	}
	// Read alg alone first, so another algorithm gets its own error even
	// when the rest of its header, or its signature's length, would not
	// fit ours.
	var algOnly struct {
		Alg any `cbor:"1,keyasint"`
	}
	if err := headerDecModeAnyFields.Unmarshal(raw.Protected, &algOnly); err != nil {
		return nil, fail(ErrHeader, err, "protected header")
	}
	if alg, ok := algOnly.Alg.(int64); !ok || alg != int64(cose.AlgorithmEdDSA) {
		return nil, fail(ErrAlgorithm, nil, "alg %v, only EdDSA (-8) is accepted", algOnly.Alg)
	}
	if len(raw.Signature) != ed25519.SignatureSize {
		return nil, fail(ErrSignature, nil, "an Ed25519 signature is %d bytes, got %d", ed25519.SignatureSize, len(raw.Signature))
	}
	var h protectedHeader
	if err := headerDecMode.Unmarshal(raw.Protected, &h); err != nil {
		return nil, fail(ErrHeader, err, "protected header must hold exactly alg, content type and kid")
	}
	if h.ContentType == "" || len(h.KID) == 0 {
		return nil, fail(ErrHeader, nil, "protected header must hold exactly alg, content type and kid")
	}
	kid, err := parseKeyID(h.KID)
	if err != nil {
		return nil, fail(ErrHeader, err, "kid")
	}
	if canon, err := encMode.Marshal(h); err != nil || !bytes.Equal(canon, raw.Protected) {
		return nil, fail(ErrNotCanonical, nil, "protected header")
	}
	if canon, err := kid.marshal(); err != nil || !bytes.Equal(canon, h.KID) {
		return nil, fail(ErrNotCanonical, nil, "kid")
	}
	if !bytes.Equal(appendSign1(make([]byte, 0, len(data)), raw.Protected, raw.Payload, raw.Signature), data) {
		return nil, fail(ErrNotCanonical, nil, "cose envelope")
	}
	return &Envelope{KeyID: kid, ContentType: h.ContentType, protected: raw.Protected, kid: h.KID, payload: raw.Payload, signature: raw.Signature}, nil
}

// headerDecModeAnyFields reads one field of a header, ignoring the others.
var headerDecModeAnyFields = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: 16,
		MaxMapPairs:      16,
		IntDec:           cbor.IntDecConvertSignedOrFail,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("batch: cbor decoding options: %v", err)) // constant options
	}
	return dm
}()

// verify checks the content type and the signature with pub under program.
func (e *Envelope) verify(ct, program string, pub ed25519.PublicKey) error {
	if e.ContentType != ct {
		return fail(ErrContentType, nil, "got %q, want %q", e.ContentType, ct)
	}
	if len(pub) != ed25519.PublicKeySize {
		return fail(ErrSignature, nil, "no usable public key for %s", e.KeyID)
	}
	if Fingerprint(pub) != e.KeyID.Key {
		return fail(ErrSignature, nil, "kid names key %s, the key given is %s", e.KeyID.Key, Fingerprint(pub))
	}
	v, err := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	if err != nil {
		return fail(ErrSignature, err, "verifier")
	}
	msg := cose.Sign1Message{
		Headers: cose.Headers{
			RawProtected:   appendBstr(nil, e.protected),
			Protected:      cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA, cose.HeaderLabelContentType: e.ContentType, cose.HeaderLabelKeyID: e.kid},
			RawUnprotected: emptyMap,
		},
		Payload:   e.payload,
		Signature: e.signature,
	}
	if err := msg.Verify(AAD(program), v); err != nil {
		return fail(ErrSignature, err, "kid %s, program %q, protocol %d", e.KeyID, program, ProtocolVersion)
	}
	return nil
}

// decodePayload decodes the verified payload strictly into v and checks
// that v re-encodes to the identical bytes.
func decodePayload(dm cbor.DecMode, payload []byte, v any) error {
	if err := dm.Unmarshal(payload, v); err != nil {
		return fail(ErrMalformed, err, "payload")
	}
	canon, err := encMode.Marshal(v)
	if err != nil {
		return fail(ErrMalformed, err, "payload re-encode")
	}
	if !bytes.Equal(canon, payload) {
		return fail(ErrNotCanonical, nil, "payload")
	}
	return nil
}
