// Package server is the HTTP face of the cloud ledger (`tillpoint cloud`):
// batch ingest, the signed snapshot and rules feeds for terminals, terminal
// enrollment, and the admin API.
//
// # Routes
//
//	POST /v1/enroll                       a terminal trades a one-time code for its registration (JSON)
//	POST /v1/batches                      a signed batch in, a signed ack out (COSE_Sign1, CBOR)
//	GET  /v1/snapshots                    signed member snapshots for the caller's store
//	GET  /v1/rules                        the current signed rules
//	POST /v1/admin/enroll-codes           make a one-time enrollment code (admin token)
//	POST /v1/admin/terminals/{id}/revoke  stop accepting a terminal's batches (admin token)
//	GET  /healthz                         liveness
//
// Every error is an RFC 9457 problem document (application/problem+json)
// whose "code" member is stable and is what clients switch on; the mapping
// from domain errors to codes and statuses lives here and nowhere else.
//
// # What it must never do
//
// It never changes the ledger for a request it has not verified: a batch is
// checked against the sending terminal's registered key, its status and the
// COSE key ID before the ledger sees it (invariant 6). It never reads a body
// without a size cap, never logs a request body, a card identifier, an
// enrollment code or a token, and never compares a secret except with
// crypto/subtle. It owns no storage and no wire format: the ledger and the
// batch codec come from cloud and sync/batch through the small interfaces
// declared in ledger.go.
package server
