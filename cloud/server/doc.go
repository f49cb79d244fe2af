// Package server is the HTTP face of the cloud ledger (`tillpoint cloud`):
// batch ingest, the signed snapshot and rules feeds for terminals, terminal
// enrollment, and the admin API.
//
// # Routes
//
//	POST /v1/enroll                       a terminal trades a one-time code for its registration
//	                                      (JSON: batch.EnrollRequest in, batch.EnrollResponse out)
//	POST /v1/batches                      a signed batch in, a signed ack out (COSE_Sign1, CBOR)
//	GET  /v1/snapshots                    signed member snapshots for the caller's store
//	GET  /v1/rules                        the current signed rules
//	GET  /v1/roster[?box=KEY]             the caller's store roster, signed; the card key and
//	                                      the store's gossip keyring sealed to KEY
//	POST /v1/admin/enroll-codes           make a one-time enrollment code (admin token)
//	POST /v1/admin/terminals/{id}/revoke  stop accepting a terminal's batches (admin token)
//	POST /v1/admin/stores/{id}/gossip-key rotate the store's gossip key, or {"finish":true}
//	                                      to drop the retired one (admin token)
//	GET  /metrics                         Server.Metrics in Prometheus's text format, when set
//	                                      (admin token)
//	GET  /healthz                         liveness
//	GET  /readyz                          readiness: 503 while the ledger's database does not answer,
//	                                      or has just refused a write for lack of room (storage_full)
//
// # Ingest
//
// POST /v1/batches takes a sealed batch (sync/batch, media type
// batch.ContentType) of at most MaxBatchBytes. The server reads the kid,
// looks the terminal up, refuses it when unknown, revoked or when the kid
// names another key than the one it enrolled, verifies the signature under
// the program's AAD, decodes strictly, and then calls Ledger.Apply. Replies:
//
//	200 + signed ack, status applied     the batch is on the ledger now
//	200 + signed ack, status duplicate   the same batch (same hash) was applied before; same results
//	409 + signed ack, status gap         the batch starts past watermark+1; the ack carries the
//	                                     watermark: re-seal from watermark+1 and send again
//	409 + problem sequence_rewind        below the watermark and not a replay: never retry as is
//	503 + problem unavailable            the ledger is busy (or halted): resend the same bytes
//	                                     after Retry-After
//	503 + problem storage_full           the ledger's database had no room: nothing applied;
//	                                     resend the same bytes after Retry-After
//	4xx + problem                        refused, nothing changed: see the codes in problem.go
//
// The gap answer is signed, not a problem document, because the terminal
// acts on the watermark it carries.
//
// # Feeds
//
// GET /v1/snapshots and GET /v1/rules are signed by the terminal (headers
// Tillpoint-Terminal, Tillpoint-Timestamp and Tillpoint-Signature, an
// Ed25519 signature over batch.RequestSigningMessage) and answered with messages
// sealed by the cloud (batch.SnapshotSet, batch.RulesDoc). Snapshots come in
// pages: ?limit=N&after=CURSOR, CURSOR being the previous page's Next.
//
// # Rosters and the store's keys
//
// Every terminal of a store must know the others to trust the offline
// redeems they announce (offline/peers, invariant 4). The enrollment reply
// and GET /v1/roster carry a batch.RosterDoc sealed by the cloud: the
// store's terminals with their gossip address, public key and revoked
// flag, and a version that grows with every enrollment, revocation and key
// change. The program's card key (Server.CardKey) and the store's gossip
// keyring (made with the store's first terminal, the primary first) are
// sealed inside it to the X25519 key the terminal sent
// (batch.SealSecrets), so they stay secret where TLS ends before the
// cloud; without a key the roster comes without them. A rotation adds a
// primary and retires the old key; tills keep a retired key for
// GossipKeyGrace, or until the rotation is finished.
//
// # Metrics
//
// The server counts nothing itself: an Observer hears of every request
// (route, status, outcome, duration) and of the results of every batch's
// ops, and ApplyInFlight tells how many batches the ledger is applying.
// The cloud command turns these and the ledger's retry counts into a
// Prometheus registry, served as Server.Metrics.
//
// # Errors
//
// Every other error is an RFC 9457 problem document (application/problem+json)
// whose "code" member is stable and is what clients switch on; the mapping
// from domain errors to codes and statuses lives here and nowhere else.
//
// # What it must never do
//
// It never changes the ledger for a request it has not verified: a batch is
// checked against the sending terminal's registered key, its status and the
// COSE key ID before the ledger sees it (invariant 6). It never reads a body
// without a size cap, never logs a request body, a card identifier, an
// enrollment code, a token, the card key or a gossip key (keys are named by
// GossipKeyID), never sends the card key or a gossip key unsealed, and never compares a secret except with
// crypto/subtle. It owns no storage and no wire format: the ledger is
// the Ledger interface in ledger.go (cloud/sqlstore implements it) and every
// signed message is made and checked by sync/batch.
package server
