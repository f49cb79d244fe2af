// Package devices is the shared model of the till's hardware: one identity,
// state machine and health report for every device, the events devices
// emit (scans, taps, health changes, read errors), and the Bus that hands
// them to the agent.
//
// The drivers live in sub-packages named after what they drive:
// devices/scanner (serial and HID keyboard-wedge barcode scanners),
// devices/nfc (PC/SC readers), devices/printer (ESC/POS receipt printers
// and the cash drawer behind them) and devices/discover (what is attached).
// devices/devicestest records and plays back byte exchanges for unit tests.
//
// The state model follows UnifiedPOS (UPOS 1.16, chapter "Device States"):
// a device is closed, idle, busy or in error, and its power is online,
// offline or unknown. Every change goes out as a Health event with a stable
// Code for programs and a Reason a cashier can read ("Printer: paper out").
//
// Delivery: scans and taps go only to whoever waits for them (Bus.NextRead);
// a read nobody took within the Bus's TTL expires instead of landing on the
// next customer.
//
// What this package must never do:
//   - import anything about loyalty, or any tillpoint package: devices turn
//     hardware into events and know nothing of cards, members or points;
//   - put a full card value or NFC UID in a log line or an error message
//     (use Redact; events carry the raw value for the agent only);
//   - let a device that fails, vanishes or talks garbage stop the caller:
//     drivers report it in Health and keep trying.
package devices
