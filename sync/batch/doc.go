// Package batch is tillpoint's wire format: every signed message that
// travels between a store terminal and the cloud ledger is built and checked
// here, so both sides share one definition of the bytes.
//
// # Messages
//
//   - Batch: a run of journal operations of one terminal and journal epoch,
//     sequences First..Last without gaps, chained to the previous batch by
//     its hash. Sealed by the terminal's Ed25519 key (POST /v1/batches).
//   - Ack: the cloud's answer to a batch: the watermark (highest sequence
//     applied), one result per op, fresh member snapshots for the cards in
//     the batch, the current rules version. Sealed by the cloud's key.
//   - SnapshotSet: the member snapshots for the cards a store has seen
//     (GET /v1/snapshots), sealed by the cloud.
//   - RulesDoc: one version of the program's rules in their canonical JSON
//     form (GET /v1/rules), sealed by the cloud.
//   - EnrollRequest and EnrollResponse: the JSON documents of POST
//     /v1/enroll, unsigned (the terminal has no enrolled key yet; Proof
//     shows it holds its new one). Their golden bytes are in
//     testdata/enroll.
//
// # Encoding
//
// A payload is a CBOR map with small integer keys, encoded with the core
// deterministic encoding of RFC 8949 section 4.2 (fxamacker/cbor/v2), so a
// value has exactly one encoding. The wire structs in wire.go are separate
// from the loyalty domain types: a field added to loyalty.Op does not change
// the wire until it is mapped here with a new key.
//
// The envelope is a tagged COSE_Sign1 (RFC 9052) made and verified with
// github.com/veraison/go-cose. Its protected header holds exactly three
// parameters: alg EdDSA (the only algorithm accepted), kid (the signer, its
// key fingerprint and the journal epoch, see KeyID) and a content type of
// ours that says which message the payload is, so an ack can never be
// passed off as a batch. The unprotected header is empty. The external AAD
// binds the program ID and the protocol version (AAD), so a signature made
// for one program cannot be replayed into another. Over HTTP the media type
// is ContentType.
//
// # Decoding untrusted bytes
//
// Open* functions take bytes from the network. They check, in order: the
// size cap; the envelope's structure with strict decoding options (no
// indefinite lengths, no tags but the COSE_Sign1 tag, no duplicate map keys,
// small nesting, array and map limits); that the envelope is byte for byte
// the one this package would write; the algorithm, the content type and the
// kid; the signature; only then the payload, strictly again (unknown fields
// are errors), and that it is in the one deterministic encoding; finally
// that the payload's signer and epoch match the kid. Every failure is an
// *Error wrapping one of the sentinel errors (ErrTooLarge, ErrMalformed,
// ...), so the cloud can answer each case specifically; Code names it for a
// problem document.
//
// The rules are fxamacker's DecOptions (limits, IndefLengthForbidden,
// TagsForbidden, DupMapKeyEnforcedAPF, ExtraDecErrorUnknownField,
// UTF8RejectInvalid) and the re-encoding of the decoded value to the
// identical bytes. The two messages read most, the batch (by the cloud)
// and the ack (by the terminal, one per batch it sends), get the same rules
// from hand-written decoders (decode.go, decode_ack.go, on the reader of
// read.go) that check them in one pass over the bytes and decode straight
// into the Go types, and the envelopes this package writes are read in
// place (parseOwnEnvelope). Fuzz targets (FuzzBatchDecoders,
// FuzzAckPayload, FuzzOpenBatch, FuzzOpenAck) hold them to fxamacker's
// strict decoding, kept in the tests as the reference for those two
// messages; it still reads every other message and tells what is wrong
// with an envelope that is not ours.
//
// The package must never: accept another algorithm or an unsigned message,
// decode a payload before its signature verified, panic on input, do I/O
// (beyond reading a request body through http.MaxBytesReader in ReadBody,
// and the Ed25519 key files of keyfile.go, which both sides keep in one
// format), replace or loosen the mode of a key file, or hold package-level
// mutable state (the CBOR modes are immutable values).
package batch
