package printer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"go.bug.st/serial"
)

// Conn is a connection to a printer. net.Conn and *os.File (for
// /dev/usb/lp*) have it; a serial port gets it from an adapter.
type Conn interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	Close() error
}

// Dialer opens a connection to a printer.
type Dialer func(ctx context.Context) (Conn, error)

var (
	_ Conn = net.Conn(nil)
	_ Conn = (*os.File)(nil)
)

// TCP dials a network printer, port 9100 unless addr names one.
func TCP(addr string) Dialer {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "9100")
	}
	return func(ctx context.Context) (Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("connect to printer at %s: %w (is it switched on and on the network?)", addr, err)
		}
		return c, nil
	}
}

// USBLP opens the USB line-printer device (/dev/usb/lp0): reads get the
// printer's status answers on bidirectional printers.
func USBLP(path string) Dialer {
	return func(context.Context) (Conn, error) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("open printer %s: %w (is it plugged in, and may this user write to it?)", path, err)
		}
		if err := f.SetReadDeadline(time.Time{}); errors.Is(err, os.ErrNoDeadline) {
			// Not pollable: a read could block for ever. Use it write-only;
			// its status is unknown.
			return writeOnly{f}, nil
		}
		return f, nil
	}
}

// Serial opens a serial printer with go.bug.st/serial.
func Serial(path string, mode serial.Mode) Dialer {
	return func(context.Context) (Conn, error) {
		m := mode
		p, err := serial.Open(path, &m)
		if err != nil {
			return nil, fmt.Errorf("open printer port %s: %w (is it plugged in?)", path, err)
		}
		return &serialConn{port: p}, nil
	}
}

// serialConn gives a serial port read deadlines. Its writes take none:
// go.bug.st/serial opens ports without RTS/CTS flow control, so the UART
// sends at the baud rate whatever the printer's state and a write ends
// within len/baud (4 KiB at 9600 baud: 4.3 s); a printer that stopped is
// then noticed by the status and confirmation reads, which have deadlines.
type serialConn struct {
	port     serial.Port
	deadline time.Time
}

func (c *serialConn) Read(p []byte) (int, error) {
	if !c.deadline.IsZero() {
		d := time.Until(c.deadline)
		if d <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		if err := c.port.SetReadTimeout(d); err != nil {
			return 0, err
		}
	} else if err := c.port.SetReadTimeout(serial.NoTimeout); err != nil {
		return 0, err
	}
	n, err := c.port.Read(p)
	if n == 0 && err == nil {
		return 0, os.ErrDeadlineExceeded
	}
	return n, err
}

func (c *serialConn) Write(p []byte) (int, error)       { return c.port.Write(p) }
func (c *serialConn) SetReadDeadline(t time.Time) error { c.deadline = t; return nil }
func (c *serialConn) SetWriteDeadline(time.Time) error  { return nil }
func (c *serialConn) Close() error                      { return c.port.Close() }

// writeOnly is a device whose reads cannot have a deadline: it never
// reads, so it looks like a printer that does not answer status.
type writeOnly struct{ f *os.File }

func (w writeOnly) Read([]byte) (int, error)           { return 0, os.ErrDeadlineExceeded }
func (w writeOnly) Write(p []byte) (int, error)        { return w.f.Write(p) }
func (w writeOnly) SetReadDeadline(time.Time) error    { return nil }
func (w writeOnly) SetWriteDeadline(t time.Time) error { _ = w.f.SetWriteDeadline(t); return nil }
func (w writeOnly) Close() error                       { return w.f.Close() }

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// DefaultSerialMode is 9600 8N1, the factory setting of most serial
// receipt printers.
func DefaultSerialMode() serial.Mode {
	return serial.Mode{BaudRate: 9600, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit}
}
