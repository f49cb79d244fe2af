// Package agent is the store terminal's daemon as a library: checkout
// sessions opened by a card from a scanner, an NFC reader or the local API;
// earn, redeem, void and enroll operations computed with the cached rules,
// made durable in the journal before anyone is told they happened; receipts
// rendered and printed; idempotent replies for POS apps that retry; and a
// stream of events for the cashier screen.
//
// An Agent is made with Create, started with Start and stopped with
// Shutdown (safe to call twice). What it depends on (the journal, the
// receipt renderer, the printer, the uplink's state) is declared here as
// small interfaces and wired in cmd/tillpoint, so tests run the real
// journal in t.TempDir() and fakes only at their edge.
//
// The printer's memory of the jobs it sent (PrintJobs) lives in the agent's
// database, so a receipt retried after a restart is not printed twice.
// Receipt pictures for the screen are rendered when the screen asks, never
// on the checkout path.
//
// With store peers enabled ([peers] in the config), StorePeers puts
// offline/peers around the journal: an offline redeem is checked with the
// store's other tills before the journal's policy runs (a till that reaches
// neither them nor the cloud applies the isolated cap) and announced to
// them once durable; /v1/status and the cashier screen list them. The
// store's roster and gossip keyring come from the enrollment and follow the
// cloud's GET /v1/roster live (RefreshRoster): new tills are trusted,
// revoked ones dropped, rotated keys installed and switched without a
// restart. agent.toml's [peers] roster and gossip_key_file override them
// for a store without a cloud (PeersConflicts names a contradiction).
//
// The HTTP API (package agent/api), the cashier screen (agent/screen),
// metrics (internal/metrics), systemd notifications (agent/systemd) and the
// configuration (agent/config) live in subpackages.
//
// The agent must never: reply to an operation before the journal has
// committed it (invariant 1); let a retried request earn or redeem twice;
// log a card number or NFC UID in the clear (invariant 7: loyalty.CardToken
// logs redacted, and only card hashes are stored); compute points with
// anything but loyalty.Rules.Earn on the cached rules (invariant 5); import
// the cloud.
package agent
