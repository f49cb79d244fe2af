// Command hilreport reads 'go test -json' of the hardware-in-the-loop
// suite on stdin and ends with the table 'make hil' shows: scenario,
// result, duration. It prints the whole output of a test that failed and
// the reason of one that skipped; a skip that names a missing part of the
// product ("GAP: ...") or a defect reported to its owner ("DEFECT: ...")
// gets its own result so that neither passes for a green run. It exits 1
// when any test or package failed, or when the input ends early.
//
// It must never run tests itself; it only reads their events.
package main
