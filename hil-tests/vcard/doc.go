// Package vcard is a virtual contactless card for tests: it speaks the
// protocol of vsmartcard's vpcd driver, so a real pcscd sees a real reader
// ("Virtual PCD 00 00") with this card on it.
//
// vpcd protocol (vsmartcard, virtualsmartcard/src/vpcd/vpcd.c): the card
// connects over TCP to the driver (127.0.0.1:35963 by default, the port in
// /etc/reader.conf.d/vpcd's DEVICENAME, 0x8C7B); while the connection is
// open the card is on the reader. Every message either way is a 2-byte
// big-endian length and a payload. From the driver, a 1-byte payload is a
// control (0x00 power off, 0x01 power on, 0x02 reset, 0x04 send the ATR,
// answered with the ATR); a longer one is a command APDU, answered with the
// response APDU.
//
// The card answers the PC/SC part 3 pseudo-APDU GET DATA (FF CA 00 00 00)
// with its UID, as a contactless reader does; it can give a random UID per
// read (as phones and bank cards do), answer an error status word, or be
// pulled away in the middle of a read.
//
// It must never be used outside tests and tools.
package vcard
