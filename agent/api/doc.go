// Package api is the terminal agent's local HTTP API for POS apps: JSON
// under /v1, described by the OpenAPI 3 document openapi.json (kept in this
// folder and served at /v1/openapi.json), server-sent events at /v1/events,
// Prometheus metrics at /metrics and the cashier screen at /.
//
// Every POST takes an Idempotency-Key header; a retry with the same key gets
// the first answer (with Idempotent-Replayed: true) and never earns twice.
// Errors are RFC 9457 problem details (application/problem+json) whose
// detail is a sentence the cashier can read.
//
// Its JSON types are its own, separate from the domain types, so the wire
// format only changes on purpose. It must never log a request path or body
// (a card number can be in either), accept a body over MaxBody, or answer an
// operation before the agent says it is durable.
package api
