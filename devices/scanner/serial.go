package scanner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.bug.st/serial"

	"github.com/tillpoint/tillpoint/devices"
)

// Defaults of a serial scanner's Config.
const (
	DefaultBaud       = 9600
	DefaultGap        = 50 * time.Millisecond  // inter-character timeout for FrameGap
	DefaultStale      = 500 * time.Millisecond // a partial frame with no suffix this long is dropped
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
)

// Port is what a serial scanner needs of a port: go.bug.st/serial's Port
// has it, and tests can give a playback.
type Port interface {
	Read(p []byte) (int, error)
	SetReadTimeout(t time.Duration) error
	Close() error
}

var _ Port = serial.Port(nil)

// Config is a serial scanner's settings. Start from DefaultConfig.
type Config struct {
	ID         devices.ID // ID.Path is the port: /dev/ttyACM0, /dev/serial/by-id/...
	Mode       serial.Mode
	Framing    Framing
	Gap        time.Duration // FrameGap: a scan ends after this long without a byte
	Stale      time.Duration // other framings: a partial scan without suffix is dropped after this
	MinBackoff time.Duration // first wait before reopening a vanished port
	MaxBackoff time.Duration // the wait doubles up to this

	// OpenPort opens the port; serial.Open when nil.
	OpenPort func(path string, mode *serial.Mode) (Port, error)
	Now      func() time.Time
	Logger   *slog.Logger
}

// DefaultConfig returns the settings of a scanner on path: 9600 8N1, CR
// suffix, backoff from 100 ms to 5 s.
func DefaultConfig(path string) Config {
	return Config{
		ID:         devices.ID{Kind: devices.KindScanner, Path: path},
		Mode:       serial.Mode{BaudRate: DefaultBaud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit},
		Framing:    FrameCR,
		Gap:        DefaultGap,
		Stale:      DefaultStale,
		MinBackoff: DefaultMinBackoff,
		MaxBackoff: DefaultMaxBackoff,
	}
}

// Validate reports a setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.ID.Path == "":
		return errors.New("scanner: no port path; set the scanner's port (e.g. /dev/ttyACM0)")
	case c.Mode.BaudRate <= 0:
		return fmt.Errorf("scanner %s: baud rate %d; set the scanner's baud rate (e.g. 9600)", c.ID.Path, c.Mode.BaudRate)
	case c.Mode.DataBits != 0 && (c.Mode.DataBits < 5 || c.Mode.DataBits > 8):
		return fmt.Errorf("scanner %s: %d data bits; use 7 or 8", c.ID.Path, c.Mode.DataBits)
	case c.Framing > FrameGap:
		return fmt.Errorf("scanner %s: unknown framing %d", c.ID.Path, c.Framing)
	case c.Framing == FrameGap && c.Gap <= 0:
		return fmt.Errorf("scanner %s: gap framing needs a positive gap", c.ID.Path)
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("scanner %s: backoff %v to %v; the minimum must be positive and at most the maximum", c.ID.Path, c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// Serial is a serial or USB-CDC barcode scanner. It keeps the port open,
// publishes scans, and when the port vanishes reports it disconnected and
// reopens it with backoff until Close.
type Serial struct {
	cfg    Config
	pub    devices.Publisher
	health *devices.Reporter
	log    *slog.Logger
	run    runner
}

// NewSerial returns a scanner with cfg that publishes to pub. Open starts it.
func NewSerial(cfg Config, pub devices.Publisher) *Serial {
	if cfg.ID.Kind == "" {
		cfg.ID.Kind = devices.KindScanner
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OpenPort == nil {
		cfg.OpenPort = func(path string, mode *serial.Mode) (Port, error) { return serial.Open(path, mode) }
	}
	if cfg.Stale <= 0 {
		cfg.Stale = DefaultStale
	}
	log := cfg.Logger.With(devices.KeyDevice, cfg.ID.String())
	return &Serial{cfg: cfg, pub: pub, log: log,
		health: devices.NewReporter(cfg.ID, pub, cfg.Now, log)}
}

// ID is the scanner's identity.
func (s *Serial) ID() devices.ID { return s.cfg.ID }

// Health is the scanner's current health.
func (s *Serial) Health() devices.Health { return s.health.Get() }

// Open validates the settings and starts reading in the background. It
// does not wait for the port: a scanner not plugged in yet is reported
// disconnected and picked up when it appears.
func (s *Serial) Open(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	return s.run.start(ctx, s.cfg.ID.Path, s.loop)
}

// Close stops reading, closes the port and waits for the reader to end (or
// for ctx). It is safe to call twice.
func (s *Serial) Close(ctx context.Context) error {
	if running, err := s.run.stop(ctx, s.cfg.ID.Path); !running || err != nil {
		return err
	}
	s.health.Set(devices.StateClosed, devices.PowerUnknown, devices.CodeClosed, "Scanner: closed")
	return nil
}

func (s *Serial) loop(ctx context.Context) {
	reconnect(ctx, s.health, s.log, s.cfg.MinBackoff, s.cfg.MaxBackoff, func() (Port, error) {
		mode := s.cfg.Mode
		return s.cfg.OpenPort(s.cfg.ID.Path, &mode)
	}, s.read)
}

// reconnect opens a device, reads it until it fails, and opens it again
// with doubling backoff, reporting health, until ctx ends. Shared by the
// serial and HID scanners.
func reconnect[C interface{ Close() error }](ctx context.Context, health *devices.Reporter, log *slog.Logger,
	minBackoff, maxBackoff time.Duration, open func() (C, error), read func(context.Context, C) error) {
	const gone = "Scanner: unplugged or not found; check its cable"
	backoff := minBackoff
	for ctx.Err() == nil {
		conn, err := open()
		if err != nil {
			if health.Set(devices.StateError, devices.PowerOffline, devices.CodeDisconnected, gone) {
				log.Warn("scanner unavailable; retrying", devices.KeyError, err, devices.KeyWait, backoff)
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		health.Set(devices.StateIdle, devices.PowerOnline, devices.CodeOK, "Scanner: ready")
		err = read(ctx, conn)
		_ = conn.Close()
		if ctx.Err() != nil {
			return
		}
		health.Set(devices.StateError, devices.PowerOffline, devices.CodeDisconnected, gone)
		log.Warn("scanner lost; reconnecting", devices.KeyError, err)
		if !sleep(ctx, backoff) {
			return
		}
	}
}

// read reads scans from port until it fails or ctx ends.
func (s *Serial) read(ctx context.Context, port Port) error {
	stop := context.AfterFunc(ctx, func() { _ = port.Close() })
	defer stop()
	timeout := s.cfg.Stale
	if s.cfg.Framing == FrameGap {
		timeout = s.cfg.Gap
	}
	f := Framer{Framing: s.cfg.Framing}
	buf := make([]byte, 512)
	var frames []Frame
	armed := true // force the first SetReadTimeout
	for {
		// Wait for ever while idle; time out only inside a frame, to end
		// it (gap framing) or drop it (a suffix that never came).
		if want := f.Pending(); want != armed {
			t := serial.NoTimeout
			if want {
				t = timeout
			}
			if err := port.SetReadTimeout(t); err != nil {
				return fmt.Errorf("set read timeout: %w", err)
			}
			armed = want
		}
		n, err := port.Read(buf)
		if err != nil {
			return err
		}
		frames = frames[:0]
		if n == 0 { // read timeout: a gap
			if f.Pending() {
				if s.cfg.Framing == FrameGap {
					frames = f.Flush(frames)
				} else {
					f = Framer{Framing: s.cfg.Framing}
					s.readError(devices.CodeMisread, "Scanner: incomplete scan without its suffix; check the scanner's suffix setting", ErrMalformed)
				}
			}
		} else {
			frames = f.Feed(buf[:n], frames)
		}
		for _, fr := range frames {
			s.emit(fr)
		}
	}
}

func (s *Serial) emit(fr Frame) {
	if fr.Overflow {
		s.readError(devices.CodeOverflow, "Scanner: scan too long, discarded; check the scanner's suffix setting", ErrTooLong)
		return
	}
	s.pub.Publish(scanOrError(s.cfg.ID, s.cfg.Now(), fr.Data, s.log))
}

func (s *Serial) readError(code devices.Code, reason string, err error) {
	s.log.Warn("scanner read error", devices.KeyCode, string(code), devices.KeyError, err)
	s.pub.Publish(devices.ReadError{Device: s.cfg.ID, At: s.cfg.Now(), Code: code, Reason: reason, Err: err})
}

// scanOrError parses one frame into a Scan event, or a ReadError event for
// a misread. Shared by the serial and HID scanners.
func scanOrError(id devices.ID, at time.Time, data []byte, log *slog.Logger) devices.Event {
	l, err := Parse(data)
	if err != nil {
		log.Warn("scanner misread", devices.KeyCode, string(devices.CodeMisread), devices.KeyError, err)
		return devices.ReadError{Device: id, At: at, Code: devices.CodeMisread,
			Reason: "Scanner: misread, scan the card again", Err: err}
	}
	sc := devices.Scan{Device: id, At: at, Data: data, Label: l.Text, Symbology: l.Symbology, AIM: l.AIM}
	log.Debug("scan", "scan", sc)
	return sc
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
