// Package journal is a store terminal's durable record of what it did: an
// append-only, hash-chained SQLite journal of loyalty operations, the member
// snapshot cache the terminal works from when the cloud does not answer, the
// outbox of sealed batches the uplink resends byte for byte, the redeems that
// store peers made offline, and the offline redeem policy built on them.
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL (with NORMAL a
// committed transaction can roll back after a power cut), a busy timeout and
// foreign keys on; its schema is a list of embedded, versioned migrations
// (PRAGMA user_version). Append returns only after the transaction holding
// the op has committed. Concurrent appends are group-committed by one writer
// goroutine: ops that arrive while a commit is in flight share the next
// transaction, and every caller is answered only after that commit returns.
// A full disk, a read-only file or a corrupt database reaches the caller as
// an error (ErrStorageFull, ErrReadOnly, ErrCorrupt), never as an
// acknowledgement.
//
// # Order and chain
//
// Within an epoch, Seq is gapless from 1. Each stored op carries
// link = SHA-256(previous link || canonical encoding of the op), with the
// canonical encoding of loyalty.Op (AppendCanonical); the chain runs across
// epochs. Verify walks the whole journal and names the first broken link.
//
// # Epochs
//
// A journal that loses continuity starts a new epoch, in which Seq restarts
// at 1. Continuity is checked at Open against a sidecar file next to the
// database (PATH-epoch) holding the journal's identity, a token rotated on
// every Open (the database keeps the current and the previous token, so a
// crash between the two writes is not mistaken for a restore) and the
// highest (epoch, seq) the journal had reached, refreshed after commits
// about once a second and at Close. A database restored from a backup, copied
// from elsewhere or replaced fails one of those checks. What no local check
// can see (a backup taken less than a second before the loss) the cloud sees:
// its watermark is ahead of the journal, and the uplink calls NewEpoch. An
// epoch started for a loss of continuity is at least the seconds since the
// database was created, so that a copy restored later starts above the
// epochs the original started meanwhile, which it cannot see. A
// till enrolled under a terminal ID whose epochs the cloud already holds
// (a replacement till, a re-enrollment) writes from the epoch its
// enrollment names (Options.MinEpoch), so that its ops never take sequence
// numbers the cloud holds another journal's ops at.
//
// # The local view
//
// View is a card's cloud snapshot plus what this terminal did since that
// the cloud has not acknowledged; a card this terminal enrolled and the
// cloud has sent no snapshot of yet is known at once (balance 0 plus what
// it did since the enrollment). A writing journal answers View for
// recently read cards from memory: the writer applies each transaction's
// changes to those views after its commit returns, and a view read from
// the database while a commit was in flight is not kept. This relies on the
// Journal being the database's only writer; a read-only Journal keeps no
// views.
//
// # Using it
//
//   - The agent: Open with the terminal's and store's ids; Append for every
//     op made with the cloud's blessing; AppendOfflineRedeem (or first
//     CheckOfflineRedeem) with a Policy for a redeem made without it; View
//     for the balance to show (snapshot + this terminal's unacknowledged ops);
//     AppendRequest to store a request's idempotency key with its op in one
//     transaction, RequestByKey to find it on a retry.
//   - The uplink: Acked and OpsAfter for what to send, Backlog for its
//     state; PutSealed before the first send of a sealed batch, Sealed to
//     resend the identical bytes after a restart; MarkAcked with the
//     acknowledgement's snapshots (one transaction), which also drops the
//     sealed batches it covers; ResendAll when the cloud lost ops it had
//     acknowledged, and Resending after a restart for where that resend
//     stands; PutSnapshots for snapshots pulled on their own; NewEpoch on
//     ErrAckAhead or when the cloud's watermark for the terminal is ahead
//     of Head.
//   - Store peers: PutPeerRedeem for each offline redeem a peer reports
//     (duplicates by op ID are ignored), OfflineRedeemed for what a card
//     spent offline store-wide, DropPeerRedeems once a snapshot covers them
//     (known from the peer's acknowledgement watermark, never from clocks).
//   - Operators: Stats, Entries and Verify, through 'tillpoint journal',
//     which opens the file with Options.ReadOnly.
//
// # What it must never do
//
// Acknowledge an op that is not durable; change or delete a stored op (only
// the acknowledgement watermark moves); reuse a sequence number within an
// epoch; answer a view from memory that a commit made stale; hold or
// print a card number or NFC UID in the clear (it stores
// loyalty.CardHash, a keyed hash, only); trust the terminal's wall clock for
// order.
package journal
