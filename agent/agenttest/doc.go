// Package agenttest starts a real agent with its real local API on
// 127.0.0.1:0 for tests (the API's, the screen's, the demo's), and holds the
// test doubles for the edges the agent does not own: a switchable uplink
// state and a printer that records jobs.
//
// It must never be imported by non-test code.
package agenttest
