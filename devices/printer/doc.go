// Package printer drives ESC/POS receipt printers over TCP port 9100,
// serial ports (go.bug.st/serial) and the USB line-printer device
// (/dev/usb/lp*), and the cash drawer wired to them.
//
// A Printer sends jobs, each with an ID: a job whose ID was already
// printed is not printed again (a retried request gets the first result),
// a job sent while the printer is out of paper waits until paper is back
// and then prints once, and a drawer kick older than MaxKickAge is dropped
// rather than opening the drawer long after the sale.
//
// Protocol references (Epson "ESC/POS Application Programming Guide" and
// command reference, as implemented by Epson TM, Star in ESC/POS mode,
// Bixolon and most clones):
//   - DLE EOT n (10 04 n), real-time status, answered at once whatever is
//     in the buffer; one byte of the form 0xx1xx10. n=1 printer (bit 3
//     offline), n=2 offline cause (bit 2 cover open, bit 5 paper end stop,
//     bit 6 error), n=3 error cause (bit 3 unrecoverable, bit 5 auto-
//     recoverable), n=4 roll paper sensor (bits 2-3 near end, bits 5-6 end).
//   - GS r n (1D 72 n), transmit status, answered only when the data before
//     it has been processed; one byte of the form 0xx0xxxx. n=1 paper sensor
//     (bits 0-1 near end, bits 2-3 end), n=2 drawer (bit 0).
//   - ESC p m t1 t2 (1B 70 m t1 t2): pulse drawer kick pin m (0: pin 2,
//     1: pin 5) on for t1×2 ms and off for t2×2 ms.
//
// A printer that never answers status is "status unknown": not ready and
// not broken; jobs still go to it, unconfirmed.
//
// What this package must never do: know anything about loyalty or receipt
// layout (receipt/escpos encodes the bytes), block without a deadline, or
// print a job twice.
package printer
