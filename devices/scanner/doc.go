// Package scanner reads barcode scanners: serial and USB-CDC scanners
// through go.bug.st/serial (Serial), and HID keyboard-wedge scanners
// through Linux evdev (HID). Both frame the byte or key stream into scans,
// parse the AIM symbology identifier when the scanner sends one, validate
// check digits, and publish devices.Scan events; misreads go out as
// devices.ReadError with code "misread" and never as a scan.
//
// Protocol references:
//   - AIM ISO/IEC 15424, "Data Carrier Identifiers": "]" + symbology
//     character + modifier, e.g. ]E0 EAN-13, ]E4 EAN-8, ]C0 Code 128,
//     ]C1 GS1-128, ]Q1 QR, ]Q3 GS1 QR, ]d1 Data Matrix, ]d2 GS1 Data Matrix,
//     ]e0 GS1 DataBar, ]A0 Code 39, ]I0 ITF.
//   - GS1 General Specifications: mod-10 check digit (§7.9.1) for EAN-13,
//     EAN-8, UPC-A, GTIN (AI 01), SSCC (AI 00) and GSRN (AI 8017/8018, 18
//     digits); restricted circulation numbers are EAN-13 with prefix 20-29.
//   - Linux input event interface (Documentation/input/input.rst): struct
//     input_event {timeval; __u16 type; __u16 code; __s32 value}, 24 bytes
//     on 64-bit; EV_KEY key codes from linux/input-event-codes.h; EVIOCGRAB.
//
// Framing: by suffix (CR, LF, CRLF, TAB) or, for scanners configured without
// one, by an inter-character gap. Key codes are mapped to characters by
// their position on a US keyboard whatever layout the desktop uses, because
// that is what a keyboard-wedge scanner emits.
//
// What this package must never do: know anything about loyalty, put a
// label in a log line or an error message (devices.Redact), or stop reading
// because a scan was garbage or the port vanished: it reports, backs off and
// reconnects.
package scanner
