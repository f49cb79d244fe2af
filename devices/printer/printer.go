package printer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/devices"
)

// Defaults of a printer's Config.
const (
	DefaultIOTimeout     = 2 * time.Second        // each write, and each wait for a status answer after bytes started coming
	DefaultStatusTimeout = 300 * time.Millisecond // a real-time status answer; silence means "status unknown"
	DefaultJobTimeout    = 15 * time.Second       // the GS r answer after a job (the printer answers once it printed)
	DefaultPaperPoll     = 250 * time.Millisecond // status polling while waiting for paper
	DefaultPollInterval  = 5 * time.Second        // status polling while idle
	DefaultMaxKickAge    = 30 * time.Second       // a drawer kick older than this is dropped
	DefaultRememberJobs  = 4096                   // job IDs remembered against reprints
)

// Errors of Print. None means the job printed twice.
var (
	ErrNoJobID = errors.New("printer: job has no ID; give every print job and drawer kick an ID so a retry cannot print twice")
	// ErrNotPrinted: nothing of the job reached the printer; a retry with
	// the same ID is safe.
	ErrNotPrinted = errors.New("printer: job not printed")
	// ErrUncertain: the connection failed part way through the job; it may
	// have printed in part. It is remembered as done and is not resent.
	ErrUncertain = errors.New("printer: job may have printed in part; check the printer and reprint by hand if needed")
	ErrStaleKick = errors.New("printer: drawer kick dropped: older than the limit, the sale is over")
	ErrClosed    = errors.New("printer: closed")
)

// JobKind says what a job does.
type JobKind uint8

const (
	JobPrint      JobKind = iota // ESC/POS bytes to print
	JobDrawerKick                // open the cash drawer (ESC p)
)

func (k JobKind) String() string {
	if k == JobDrawerKick {
		return "drawer-kick"
	}
	return "print"
}

// Job is one print job or drawer kick.
type Job struct {
	ID      string // unique per request; a retry carries the same ID
	Kind    JobKind
	Data    []byte    // JobPrint: the ESC/POS bytes (receipt/escpos makes them)
	Pin     int       // JobDrawerKick: 0 (connector pin 2) or 1 (pin 5)
	Created time.Time // when the request was made; zero means now
}

// Result says what became of a job.
type Result struct {
	JobID          string
	Printed        bool   // the bytes went to the printer
	Confirmed      bool   // the printer answered GS r after processing them
	Duplicate      bool   // the ID was done before: nothing was sent this time
	WaitedForPaper bool   // the job waited for paper (or a closed cover)
	Status         Status // the last real-time status seen
}

// Config is a printer's settings. Start from DefaultConfig.
type Config struct {
	ID            devices.ID
	Dial          Dialer
	IOTimeout     time.Duration
	StatusTimeout time.Duration
	JobTimeout    time.Duration
	PaperPoll     time.Duration
	PollInterval  time.Duration // 0: no polling while idle
	MaxKickAge    time.Duration
	RememberJobs  int
	// Jobs remembers which job IDs were sent. A MemoryJobs of RememberJobs
	// when nil; the agent gives one backed by its journal so that a retry
	// after a restart does not print twice either.
	Jobs   JobLog
	Now    func() time.Time
	Logger *slog.Logger
}

// DefaultConfig returns the settings of a printer reached with dial.
func DefaultConfig(id devices.ID, dial Dialer) Config {
	id.Kind = devices.KindPrinter
	return Config{
		ID: id, Dial: dial,
		IOTimeout: DefaultIOTimeout, StatusTimeout: DefaultStatusTimeout, JobTimeout: DefaultJobTimeout,
		PaperPoll: DefaultPaperPoll, PollInterval: DefaultPollInterval, MaxKickAge: DefaultMaxKickAge,
		RememberJobs: DefaultRememberJobs,
	}
}

// Validate reports a setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Dial == nil:
		return fmt.Errorf("printer %s: no connection; configure a TCP address, serial port or /dev/usb/lp path", c.ID)
	case c.IOTimeout <= 0 || c.StatusTimeout <= 0 || c.JobTimeout <= 0 || c.PaperPoll <= 0:
		return fmt.Errorf("printer %s: timeouts must be positive", c.ID)
	case c.PollInterval < 0 || c.MaxKickAge <= 0 || c.RememberJobs <= 0:
		return fmt.Errorf("printer %s: poll interval, kick age and job memory must be positive", c.ID)
	}
	return nil
}

// Printer is an ESC/POS printer and the drawer behind it. Jobs go one at a
// time, in the order Print is called.
type Printer struct {
	cfg    Config
	health *devices.Reporter
	log    *slog.Logger

	jobMu sync.Mutex // one job or status poll at a time; guards conn, last, stale
	conn  Conn
	last  Status
	// stale is set when an answer may still come after its wait ended (a
	// status or confirmation that timed out): the next exchange drains it.
	stale bool

	mu     sync.Mutex
	cancel context.CancelFunc
	closed bool
	wg     sync.WaitGroup
}

// New returns a printer with cfg that publishes its health to pub.
func New(cfg Config, pub devices.Publisher) *Printer {
	cfg.ID.Kind = devices.KindPrinter
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With(devices.KeyDevice, cfg.ID.String())
	if cfg.Jobs == nil {
		cfg.Jobs = NewMemoryJobs(max(cfg.RememberJobs, 1))
	}
	return &Printer{cfg: cfg, log: log, health: devices.NewReporter(cfg.ID, pub, cfg.Now, log)}
}

// ID is the printer's identity.
func (p *Printer) ID() devices.ID { return p.cfg.ID }

// Health is the printer's current health.
func (p *Printer) Health() devices.Health { return p.health.Get() }

// Open validates the settings, asks the printer its status once (a printer
// that is off is reported, not an error) and starts polling it while idle.
func (p *Printer) Open(ctx context.Context) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.cancel != nil || p.closed {
		p.mu.Unlock()
		return fmt.Errorf("printer %s: already opened", p.cfg.ID)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	p.mu.Unlock()
	_, _ = p.Status(ctx)
	if p.cfg.PollInterval > 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.poll(bg)
		}()
	}
	return nil
}

func (p *Printer) poll(ctx context.Context) {
	t := time.NewTicker(p.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p.jobMu.TryLock() { // a job in progress reports health itself
			_, _ = p.statusLocked(ctx)
			p.jobMu.Unlock()
		}
	}
}

// Close stops polling and closes the connection. Safe to call twice.
func (p *Printer) Close(ctx context.Context) error {
	p.mu.Lock()
	cancel := p.cancel
	p.closed = true
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("printer %s: close: poller did not stop: %w", p.cfg.ID, ctx.Err())
	}
	p.jobMu.Lock()
	p.dropConnLocked()
	p.jobMu.Unlock()
	p.health.Set(devices.StateClosed, devices.PowerUnknown, devices.CodeClosed, "Printer: closed")
	return nil
}

func (p *Printer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Status asks the printer its real-time status. A printer that does not
// answer gives Status{Known: false} and no error; an error means it could
// not be reached.
func (p *Printer) Status(ctx context.Context) (Status, error) {
	p.jobMu.Lock()
	defer p.jobMu.Unlock()
	return p.statusLocked(ctx)
}

func (p *Printer) connLocked(ctx context.Context) (Conn, error) {
	if p.conn != nil {
		return p.conn, nil
	}
	dctx, cancel := context.WithTimeout(ctx, p.cfg.IOTimeout)
	defer cancel()
	c, err := p.cfg.Dial(dctx)
	if err != nil {
		if p.health.Set(devices.StateError, devices.PowerOffline, devices.CodeDisconnected,
			"Printer: not reachable; check that it is on and connected") {
			p.log.Warn("printer unreachable", devices.KeyError, err)
		}
		return nil, err
	}
	p.conn = c
	return c, nil
}

func (p *Printer) dropConnLocked() {
	p.stale = false
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn = nil
	}
}

// lostLocked closes a failed connection and reports the printer gone.
func (p *Printer) lostLocked(err error) {
	p.dropConnLocked()
	if p.health.Set(devices.StateError, devices.PowerOffline, devices.CodeDisconnected,
		"Printer: connection lost; check that it is on and connected") {
		p.log.Warn("printer connection lost", devices.KeyError, err)
	}
}

func (p *Printer) statusLocked(ctx context.Context) (Status, error) {
	c, err := p.connLocked(ctx)
	if err != nil {
		return Status{}, err
	}
	st, err := p.realtime(c)
	if err != nil {
		p.lostLocked(err)
		return Status{}, fmt.Errorf("printer %s: status: %w", p.cfg.ID, err)
	}
	p.last = st
	state, power, code, reason := st.health()
	p.health.Set(state, power, code, reason)
	return st, nil
}

// realtime sends DLE EOT 1..4 and reads the four answers. Silence within
// StatusTimeout is an unknown status, not an error.
func (p *Printer) realtime(c Conn) (Status, error) {
	if p.stale {
		if err := drain(c); err != nil {
			return Status{}, err
		}
		p.stale = false
	}
	if err := writeAll(c, []byte(cmdStatus), p.cfg.IOTimeout); err != nil {
		return Status{}, err
	}
	var got [4]byte
	n := 0
	deadline := time.Now().Add(p.cfg.StatusTimeout)
	buf := make([]byte, 16)
	for n < 4 {
		if err := c.SetReadDeadline(deadline); err != nil {
			return Status{}, err
		}
		k, err := c.Read(buf)
		for _, b := range buf[:k] {
			if isRealtime(b) && n < 4 { // skip anything else: a late GS r answer
				got[n] = b
				n++
			}
		}
		if err != nil {
			if isTimeout(err) {
				break
			}
			return Status{}, err
		}
	}
	if n < 4 {
		p.stale = true
	}
	if n == 0 {
		return Status{}, nil
	}
	for i := n; i < 4; i++ {
		got[i] = 0x12 // a printer that answers only some: nothing flagged
	}
	return decodeStatus(got[0], got[1], got[2], got[3]), nil
}

// drain discards stale input (an answer that came after its timeout).
func drain(c Conn) error {
	buf := make([]byte, 64)
	for range 16 {
		if err := c.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
			return err
		}
		n, err := c.Read(buf)
		if err != nil {
			if isTimeout(err) {
				return nil
			}
			return err
		}
		if n == 0 {
			return nil
		}
	}
	return nil
}

func writeAll(c Conn, b []byte, timeout time.Duration) error {
	if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	for len(b) > 0 {
		n, err := c.Write(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
