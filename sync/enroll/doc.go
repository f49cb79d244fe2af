// Package enroll is the terminal's side of enrollment: it makes the
// terminal's Ed25519 key, registers its public key with the cloud using a
// one-time code from the operator, and keeps what the agent needs to talk
// to the cloud in a state directory.
//
// # State directory
//
//	DIR/                  mode 0700
//	  terminal.key        the terminal's Ed25519 private key, PKCS #8 PEM, mode 0600
//	  cloud.pub           the cloud's Ed25519 public key, PKIX PEM: acks, snapshots
//	                      and rules must verify against it
//	  enrollment.json     {"cloud_url", "program", "store", "terminal",
//	                      "terminal_key_id", "cloud_key_id", "enrolled_at"}
//	  roster.cose         the store roster as the cloud signed it (COSE_Sign1):
//	                      the store's terminals, addresses, keys, revocations
//	  gossip.keys         the store's gossip keyring, serf's JSON format, mode 0600
//	  card.key            the program's card hash key, hex, mode 0600
//
// enrollment.json is written last, atomically: its presence means the
// terminal is enrolled, and Load reads the files back (the roster is
// verified against cloud.pub again). A failed enrollment leaves at most
// terminal.key, which the next attempt reuses.
//
// # Secrets
//
// The card key and the gossip keyring are secrets of the program and the
// store. The cloud seals them (X25519, HKDF-SHA-256, AES-256-GCM) to a
// one-time key the terminal sends with each request (the enrollment body,
// the signed GET /v1/roster), so they stay secret where TLS ends before
// the cloud; they are written mode 0600 and never logged. FetchRoster
// refreshes the roster and keyring; a document older than the one held is
// refused (ErrStaleRoster), so a replayed roster cannot bring back a
// revoked terminal or a retired key.
//
// # What it must never do
//
// It imports only loyalty and sync/batch of ours. It never sends or logs the private key or a secret, never writes them readable by group
// or others, never overwrites an enrolled state directory, and never
// trusts a cloud key it did not receive over the enrollment request. It is
// client code only: the cloud's side lives in cloud/server.
package enroll
