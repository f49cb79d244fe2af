// Package printeremu is an ESC/POS receipt printer for tests: it listens on
// TCP (as a printer's port 9100 does) or serves any byte stream (a socat
// pty standing in for a serial cable), keeps every byte it received, splits
// them into jobs, counts cash-drawer kicks, and answers status the way an
// Epson TM printer does:
//
//   - DLE EOT n (10 04 n, n = 1..4): real-time status, answered at once even
//     while paper is out and data waits in the buffer;
//   - GS r n (1D 72 n, n = 1, 2): buffered status, answered only when all
//     data before it was processed, that is printed: while paper is out,
//     nothing is processed, and the answer waits until paper is back.
//
// It does not decode text (receipt/escpos does); it only steps over the
// parameters of the commands that carry binary data (GS ( k, GS ( L, GS v 0,
// ESC *) so that bytes inside them are not taken for commands.
//
// Paper out, cover open, paper near end and silence (a printer that never
// answers status) can be switched on and off by the test.
//
// It must never be used outside tests and tools.
package printeremu
