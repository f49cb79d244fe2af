package nfc

import (
	"context"
	"errors"
	"fmt"

	"github.com/ebfe/scard"

	"github.com/tillpoint/tillpoint/devices"
)

// Errors of reading a card's UID. They never contain the UID.
var (
	ErrCardRemoved = errors.New("nfc: card removed during the read; tap again")
	ErrStatusWord  = errors.New("nfc: the card refused GET DATA")
	ErrBadUID      = errors.New("nfc: the card's UID is not 4, 7 or 10 bytes")
	ErrEmptyAPDU   = errors.New("nfc: empty APDU not sent")
)

// getUID is the PC/SC part 3 GET DATA pseudo-APDU for the UID.
func getUID() []byte { return []byte{0xFF, 0xCA, 0x00, 0x00, 0x00} }

// Transmitter is what reading a UID needs of a card: scard.Card has it.
type Transmitter interface {
	Transmit(cmd []byte) ([]byte, error)
}

var _ Transmitter = (*scard.Card)(nil)

// transmit guards Transmit: ebfe/scard panics on an empty command, and a
// library must never panic on input.
func transmit(c Transmitter, apdu []byte) (rsp []byte, err error) {
	if len(apdu) == 0 {
		return nil, ErrEmptyAPDU
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nfc: transmit failed: %v", r)
		}
	}()
	return c.Transmit(apdu)
}

// ReadUID sends GET DATA and returns the UID. It checks the status word
// and the UID's length, and reports a random UID.
func ReadUID(c Transmitter) (uid []byte, random bool, err error) {
	rsp, err := transmit(c, getUID())
	if err != nil {
		if lostCard(err) {
			return nil, false, fmt.Errorf("%w: %w", ErrCardRemoved, err)
		}
		return nil, false, fmt.Errorf("nfc: GET DATA: %w", err)
	}
	if len(rsp) == 0 {
		// No answer at all: the card left the field during the exchange.
		return nil, false, fmt.Errorf("%w: no answer to GET DATA", ErrCardRemoved)
	}
	if len(rsp) < 2 {
		return nil, false, fmt.Errorf("%w: answer of %d bytes, no status word", ErrStatusWord, len(rsp))
	}
	sw := uint16(rsp[len(rsp)-2])<<8 | uint16(rsp[len(rsp)-1])
	if sw != 0x9000 {
		return nil, false, fmt.Errorf("%w: status %04X", ErrStatusWord, sw)
	}
	uid = rsp[:len(rsp)-2]
	switch len(uid) {
	case 4, 7, 10:
	default:
		return nil, false, fmt.Errorf("%w: got %d bytes", ErrBadUID, len(uid))
	}
	return uid, IsRandomUID(uid), nil
}

// lostCard reports whether a PC/SC error means the card left the field:
// removed, reset, or the exchange broke off (a contactless card pulled away
// mid-read gives "transaction failed" or a communication error).
func lostCard(err error) bool {
	for _, e := range []error{scard.ErrRemovedCard, scard.ErrNoSmartcard, scard.ErrResetCard,
		scard.ErrNotTransacted, scard.ErrCommError, scard.ErrUnresponsiveCard, scard.ErrUnpoweredCard} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// IsRandomUID reports whether uid is an ISO/IEC 14443-3 random ID: 4 bytes
// starting 0x08, new at every activation.
func IsRandomUID(uid []byte) bool { return len(uid) == 4 && uid[0] == 0x08 }

// readCard connects to the card on reader and publishes its tap, or a
// read error.
func (w *Watcher) readCard(_ context.Context, sctx Context, reader string, atr []byte) {
	id := devices.ID{Kind: devices.KindNFC, Path: reader}
	card, err := sctx.Connect(reader)
	if err != nil {
		if lostCard(err) {
			w.readError(reader, devices.CodeCardRemoved, "NFC: card removed before it could be read; tap again", err)
			return
		}
		w.readError(reader, devices.CodeReadFailed, "NFC: could not talk to the card; tap again", err)
		return
	}
	defer func() { _ = card.Disconnect() }()
	uid, random, err := ReadUID(card)
	switch {
	case errors.Is(err, ErrCardRemoved):
		w.readError(reader, devices.CodeCardRemoved, "NFC: card removed before it could be read; tap again", err)
		return
	case err != nil:
		w.readError(reader, devices.CodeReadFailed, "NFC: card could not be read; it may not be a loyalty card", err)
		return
	}
	tap := devices.Tap{Device: id, At: w.cfg.Now(), UID: append([]byte(nil), uid...), ATR: append([]byte(nil), atr...), RandomUID: random}
	w.log.Info("nfc tap", "tap", tap)
	w.pub.Publish(tap)
}
