// Package pcscd gives hardware-in-the-loop tests a real pcscd with the
// vsmartcard vpcd driver: Ensure starts pcscd when it is not running (there
// is no systemd on the test machines) and waits for the virtual reader;
// Lock gives a test the virtual reader to itself, across test processes
// (go test runs packages in parallel), with an exclusive flock; Restart
// stops and starts pcscd, for tests of recovery, under that lock.
//
// Every test that talks to pcscd, even only to list readers, must hold
// Lock: a recovery test in another package may be restarting pcscd.
//
// Starting is idempotent and safe when several processes race: it runs
// under an flock, pcscd itself refuses a second instance, and readiness is
// judged by a PC/SC client seeing the reader.
//
// It must never be used outside tests and tools: it starts and kills pcscd.
package pcscd
