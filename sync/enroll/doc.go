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
//
// enrollment.json is written last, atomically: its presence means the
// terminal is enrolled, and Load reads all three files back. A failed
// enrollment leaves at most terminal.key, which the next attempt reuses.
//
// # What it must never do
//
// It imports only loyalty and sync/batch of ours. It never sends or logs the private key, never writes it readable by group
// or others, never overwrites an enrolled state directory, and never
// trusts a cloud key it did not receive over the enrollment request. It is
// client code only: the cloud's side lives in cloud/server.
package enroll
