// Package e2e is the end-to-end proof that a store works: the scenarios of
// issue 7, each run against the real tillpoint binary (a cloud on SQLite
// and agents of one store), real pcscd with the vpcd virtual card, serial
// devices on socat ptys, ESC/POS printers that decode what they print, and
// a fault-injecting proxy between every agent and the cloud.
//
// Scenario tests are named TestScenarioN_What; 'make hil' prints their
// table. A scenario that the binary cannot run yet, because a part it needs
// is not built, skips with "GAP: ..." (harness.Gap) and says which part; a
// check that found a wrong result in a part another team owns skips with
// "DEFECT: ..." (harness.Defect) and the evidence. Both run every check
// they can before that, and both fail instead with TILLPOINT_HIL_GAPS=fail.
// Missing tools (socat, pcscd, vpcd) skip, or fail under TILLPOINT_HIL=require.
//
// It has no non-test code.
package e2e
