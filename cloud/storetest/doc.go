// Package storetest is the one test suite every cloud.Ledger
// implementation must pass (Run), run against SQLite and PostgreSQL alike,
// and the helpers that open a real, fresh ledger for a test: OpenSQLite in
// t.TempDir(), OpenPostgres in a schema of its own on the server named by
// TILLPOINT_TEST_POSTGRES (skipped when unset, a failure when
// TILLPOINT_HIL=require), dropped when the test ends; PgBouncer, to put a
// real pooler in front of such a schema; and PrivatePostgres, a server of
// a test's own to stop and start.
//
// Every ledger the helpers open is checked when its test ends: Check must
// find conservation (invariant 3) intact, or the test fails.
//
// It is test support: it must never be imported by production code.
package storetest
