// Package e2e is the end-to-end proof that a store works: the scenarios of
// issue 7, each run against the real tillpoint binary (a cloud on SQLite
// and agents of one store), real pcscd with the vpcd virtual card, serial
// devices on socat ptys, ESC/POS printers that decode what they print, and
// a fault-injecting proxy between every agent and the cloud.
//
// Scenario tests are named TestScenarioN_What; 'make hil' prints their
// table. A scenario that the binary cannot run yet, because a part it needs
// is not built, skips with "GAP: ..." (harness.Gap) and says which part.
//
// It has no non-test code.
package e2e
