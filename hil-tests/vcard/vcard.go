package vcard

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// DefaultAddr is where vpcd listens for the card by default.
const DefaultAddr = "127.0.0.1:35963"

// ATRMifare1K returns the ATR a PC/SC part 3 reader builds for a MIFARE
// Classic 1K card.
func ATRMifare1K() []byte {
	return []byte{0x3B, 0x8F, 0x80, 0x01, 0x80, 0x4F, 0x0C, 0xA0, 0x00, 0x00, 0x03, 0x06, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x6A}
}

// Card is a virtual card. Set its fields before Insert.
type Card struct {
	UID []byte // 4, 7 or 10 bytes
	ATR []byte // ATRMifare1K() if nil
	// RandomUID answers every GET DATA with a fresh random 4-byte UID
	// starting 0x08, as phones, bank cards and passports do.
	RandomUID bool
	// SW, when set, is the status word GET DATA answers (without data),
	// e.g. 0x6A81 "function not supported".
	SW uint16
	// PullOnRead removes the card when GET DATA arrives, before answering:
	// a card pulled away mid-read.
	PullOnRead bool
}

// Session is a card on the reader: Remove takes it away.
type Session struct {
	conn net.Conn
	done chan struct{}
	err  error

	mu    sync.Mutex
	reads int
}

// Insert puts the card on the reader: it connects to vpcd at addr and
// answers it until Remove or until the driver hangs up.
func (c *Card) Insert(ctx context.Context, addr string) (*Session, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("vcard: connect to vpcd at %s: %w (is pcscd running with the vpcd driver?)", addr, err)
	}
	s := &Session{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = c.serve(s)
	}()
	return s, nil
}

// Remove takes the card off the reader and waits until it is off.
func (s *Session) Remove() error {
	_ = s.conn.Close()
	<-s.done
	return nil
}

// Done is closed when the card left the reader.
func (s *Session) Done() <-chan struct{} { return s.done }

// Reads is how many GET DATA commands the card answered.
func (s *Session) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

func (c *Card) serve(s *Session) error {
	atr := c.ATR
	if atr == nil {
		atr = ATRMifare1K()
	}
	for {
		msg, err := readMsg(s.conn)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		var answer []byte
		switch {
		case len(msg) == 1:
			switch msg[0] {
			case 0x04: // send ATR
				answer = atr
			default: // power off, power on, reset: no answer
				continue
			}
		case len(msg) == 0:
			continue
		default:
			answer = c.apdu(s, msg)
			if answer == nil { // pulled away
				_ = s.conn.Close()
				return nil
			}
		}
		if err := writeMsg(s.conn, answer); err != nil {
			return err
		}
	}
}

// apdu answers a command APDU; nil means the card was pulled away.
func (c *Card) apdu(s *Session, cmd []byte) []byte {
	if len(cmd) >= 4 && bytes.Equal(cmd[:4], []byte{0xFF, 0xCA, 0x00, 0x00}) {
		if c.PullOnRead {
			return nil
		}
		s.mu.Lock()
		s.reads++
		s.mu.Unlock()
		if c.SW != 0 {
			return []byte{byte(c.SW >> 8), byte(c.SW)}
		}
		uid := c.UID
		if c.RandomUID {
			uid = make([]byte, 4)
			_, _ = rand.Read(uid)
			uid[0] = 0x08
		}
		return append(append([]byte(nil), uid...), 0x90, 0x00)
	}
	return []byte{0x6D, 0x00} // instruction not supported
}

func readMsg(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func writeMsg(w net.Conn, b []byte) error {
	_ = w.SetWriteDeadline(time.Now().Add(5 * time.Second))
	var n [2]byte
	binary.BigEndian.PutUint16(n[:], uint16(len(b)))
	_, err := w.Write(append(n[:], b...))
	return err
}
