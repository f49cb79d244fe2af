// Package config reads the terminal agent's TOML configuration
// (/etc/tillpoint/agent.toml): the local API address, the state directory
// that holds the journal and the enrollment files, the cloud, the offline
// policy, checkout sessions, and the devices matched by USB VID:PID or by
// path.
//
// Settings come from Default, then the file, then command-line flags (the
// caller applies those). A file with an unknown key, a value of the wrong
// type or a value out of range is rejected as a whole, each problem named
// with its file, line and dotted key, so the agent never starts half
// configured.
//
// This package must never open a device, a socket or a database: it only
// reads and validates text.
package config
