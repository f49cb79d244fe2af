// Package nfc watches PC/SC contactless readers through pcsc-lite
// (github.com/ebfe/scard) and publishes a devices.Tap for each card
// presented, with its UID.
//
// Protocol references:
//   - PC/SC Workgroup, "Interoperability Specification for ICCs and
//     Personal Computer Systems", part 3 (supplement for contactless
//     readers): the pseudo-APDU GET DATA FF CA 00 00 00 returns the card's
//     UID followed by 90 00; 4, 7 or 10 bytes (ISO/IEC 14443-3 single,
//     double, triple size).
//   - ISO/IEC 14443-3: a 4-byte UID starting 0x08 is a random ID, new at
//     every activation (phones' card emulation, bank cards, passports).
//   - pcsc-lite SCardGetStatusChange: the reader "\\?PnP?\Notification"
//     reports readers plugged in or removed; the current state passed in
//     must be the last event state (passing UNAWARE returns at once, a busy
//     loop); the upper 16 bits of the event state count card events, which
//     shows a tap that came and went between two calls. SCardCancel stops a
//     wait; SCARD_E_NO_SERVICE or SCARD_E_SERVICE_STOPPED mean pcscd went
//     away and the context must be established again.
//
// One tap gives one event: a card left on the reader is not read again
// until it was removed. A card pulled away mid-read gives a ReadError with
// code card_removed; a status word other than 90 00 gives one with code
// read_failed. A reader unplugged, or pcscd stopped, is reported in the
// health of each reader and of the PC/SC service, and the watcher picks
// them up again when they come back.
//
// What this package must never do: know anything about loyalty, put a UID
// in a log line or an error message (devices.Redact), send an empty APDU to
// scard.Card.Transmit (it panics), or spin: every wait blocks in pcscd.
package nfc
