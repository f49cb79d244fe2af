package nfc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ebfe/scard"

	"github.com/tillpoint/tillpoint/devices"
)

// PnPReader is pcsc-lite's pseudo-reader for reader hot-plug.
const PnPReader = `\\?PnP?\Notification`

// ServicePath is the ID path of the PC/SC service's own health.
const ServicePath = "pcsc"

// Defaults of a Config.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	DefaultWait       = time.Minute // each GetStatusChange; Close cancels it sooner
)

// Config is a watcher's settings. The zero value watches every reader.
type Config struct {
	// Readers, if set, limits the watcher to readers whose name contains
	// one of these strings.
	Readers    []string
	MinBackoff time.Duration
	MaxBackoff time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	// Establish opens a PC/SC context; pcsc-lite through ebfe/scard when
	// nil. Tests give a scripted one.
	Establish func() (Context, error)
}

// Context is what the watcher needs of a PC/SC context.
type Context interface {
	ListReaders() ([]string, error)
	// GetStatusChange waits for a change from the CurrentState of each
	// reader state and fills in EventState (SCardGetStatusChange).
	GetStatusChange(states []scard.ReaderState, timeout time.Duration) error
	// Connect connects to the card on reader, shared, T=0 or T=1.
	Connect(reader string) (Card, error)
	Cancel() error
	Release() error
}

// Card is what the watcher needs of a connected card.
type Card interface {
	Transmitter
	// Disconnect leaves the card as it is.
	Disconnect() error
}

// EstablishPCSC opens a pcsc-lite context.
func EstablishPCSC() (Context, error) {
	c, err := scard.EstablishContext()
	if err != nil {
		return nil, err
	}
	return pcscContext{c}, nil
}

type pcscContext struct{ *scard.Context }

func (c pcscContext) Connect(reader string) (Card, error) {
	card, err := c.Context.Connect(reader, scard.ShareShared, scard.ProtocolAny)
	if err != nil {
		return nil, err
	}
	return pcscCard{card}, nil
}

type pcscCard struct{ *scard.Card }

func (c pcscCard) Disconnect() error { return c.Card.Disconnect(scard.LeaveCard) }

// Watcher watches PC/SC readers and publishes taps and health.
type Watcher struct {
	cfg     Config
	pub     devices.Publisher
	log     *slog.Logger
	service *devices.Reporter

	mu      sync.Mutex
	readers map[string]*devices.Reporter
	sctx    Context // the live context, for Cancel
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewWatcher returns a watcher publishing to pub. Open starts it.
func NewWatcher(cfg Config, pub devices.Publisher) *Watcher {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Establish == nil {
		cfg.Establish = EstablishPCSC
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	id := devices.ID{Kind: devices.KindNFC, Path: ServicePath}
	return &Watcher{cfg: cfg, pub: pub, log: cfg.Logger,
		service: devices.NewReporter(id, pub, cfg.Now, cfg.Logger),
		readers: make(map[string]*devices.Reporter)}
}

// Open starts watching in the background. pcscd not running is reported
// in health, not an error: the watcher waits for it.
func (w *Watcher) Open(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		return errors.New("nfc: watcher already open")
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		w.run(ctx)
	}()
	return nil
}

// Close stops watching and waits for the watcher to end (or for ctx).
// Safe to call twice.
func (w *Watcher) Close(ctx context.Context) error {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.cancel = nil
	w.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		// Cancel until the loop has seen it: a Cancel between two
		// GetStatusChange calls is lost.
		w.mu.Lock()
		if w.sctx != nil {
			_ = w.sctx.Cancel()
		}
		w.mu.Unlock()
		select {
		case <-done:
			w.service.Set(devices.StateClosed, devices.PowerUnknown, devices.CodeClosed, "NFC: closed")
			return nil
		case <-ctx.Done():
			return fmt.Errorf("nfc: close: watcher did not stop: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Health returns the health of the PC/SC service and of every reader seen.
func (w *Watcher) Health() []devices.Health {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := []devices.Health{w.service.Get()}
	names := make([]string, 0, len(w.readers))
	for n := range w.readers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, w.readers[n].Get())
	}
	return out
}

func (w *Watcher) reader(name string) *devices.Reporter {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.readers[name]
	if !ok {
		id := devices.ID{Kind: devices.KindNFC, Path: name}
		r = devices.NewReporter(id, w.pub, w.cfg.Now, w.log.With(devices.KeyDevice, id.String()))
		w.readers[name] = r
	}
	return r
}

func (w *Watcher) wanted(name string) bool {
	if len(w.cfg.Readers) == 0 {
		return true
	}
	for _, s := range w.cfg.Readers {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// run establishes a context and watches until ctx ends, re-establishing
// it with backoff when pcscd goes away.
func (w *Watcher) run(ctx context.Context) {
	backoff := w.cfg.MinBackoff
	for ctx.Err() == nil {
		sctx, err := w.cfg.Establish()
		if err != nil {
			w.noService(err)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, w.cfg.MaxBackoff)
			continue
		}
		w.mu.Lock()
		w.sctx = sctx
		w.mu.Unlock()
		w.service.Set(devices.StateIdle, devices.PowerOnline, devices.CodeOK, "NFC: PC/SC service running")
		err = w.watch(ctx, sctx)
		w.mu.Lock()
		w.sctx = nil
		w.mu.Unlock()
		_ = sctx.Release()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.noService(err)
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

func (w *Watcher) noService(err error) {
	if w.service.Set(devices.StateError, devices.PowerOffline, devices.CodeNoService,
		"NFC: card service (pcscd) not running; start it or reconnect the reader") {
		w.log.Warn("pcsc service unavailable", devices.KeyError, err)
	}
	w.mu.Lock()
	rs := make([]*devices.Reporter, 0, len(w.readers))
	for _, r := range w.readers {
		rs = append(rs, r)
	}
	w.mu.Unlock()
	for _, r := range rs {
		r.Set(devices.StateError, devices.PowerUnknown, devices.CodeNoService,
			"NFC reader: card service (pcscd) not running")
	}
}

// readerState is what the watcher remembers of one reader between calls.
type readerState struct {
	present bool // a card is on the reader
	read    bool // and it was read (or failed): not read again until removed
}

// watch runs GetStatusChange on every reader and the PnP pseudo-reader.
// It returns nil when ctx ends, an error when the context must be
// established again.
func (w *Watcher) watch(ctx context.Context, sctx Context) error {
	states := []scard.ReaderState{{Reader: PnPReader, CurrentState: scard.StateUnaware}}
	known := map[string]*readerState{}
	refresh := true
	for ctx.Err() == nil {
		if refresh {
			states = w.syncReaders(sctx, states, known)
			refresh = false
		}
		err := sctx.GetStatusChange(states, DefaultWait)
		switch {
		case err == nil:
		case errors.Is(err, scard.ErrTimeout):
			continue
		case errors.Is(err, scard.ErrCancelled):
			if ctx.Err() != nil {
				return nil
			}
			continue
		case errors.Is(err, scard.ErrUnknownReader), errors.Is(err, scard.ErrReaderUnavailable):
			refresh = true
			continue
		default: // SERVICE_STOPPED, NO_SERVICE, and anything unexpected
			return fmt.Errorf("nfc: wait for card events: %w", err)
		}
		for i := range states {
			st := &states[i]
			if st.EventState&scard.StateChanged == 0 {
				continue
			}
			if st.Reader == PnPReader {
				refresh = true
			} else if w.readerEvent(ctx, sctx, st, known[st.Reader]) {
				refresh = true
			}
			// Pass the last event state back next time; never UNAWARE.
			st.CurrentState = st.EventState &^ scard.StateChanged
		}
	}
	return nil
}

// syncReaders makes the state list match the readers pcscd has now.
func (w *Watcher) syncReaders(sctx Context, states []scard.ReaderState, known map[string]*readerState) []scard.ReaderState {
	names, err := sctx.ListReaders()
	if err != nil && !errors.Is(err, scard.ErrNoReadersAvailable) {
		w.log.Warn("list pcsc readers", devices.KeyError, err)
	}
	now := map[string]bool{}
	for _, n := range names {
		if w.wanted(n) {
			now[n] = true
		}
	}
	out := states[:1] // keep PnP and its last state
	for _, st := range states[1:] {
		if now[st.Reader] {
			out = append(out, st)
			delete(now, st.Reader)
			continue
		}
		delete(known, st.Reader)
		w.reader(st.Reader).Set(devices.StateError, devices.PowerOffline, devices.CodeNoReader,
			"NFC reader unplugged; plug it back in")
	}
	for _, n := range names {
		if !now[n] {
			continue
		}
		// UNAWARE once, for a reader just found: the call returns at once
		// with its state, and from then on the last event state goes back.
		out = append(out, scard.ReaderState{Reader: n, CurrentState: scard.StateUnaware})
		known[n] = &readerState{}
		w.reader(n).Set(devices.StateIdle, devices.PowerOnline, devices.CodeOK, "NFC reader: ready")
	}
	return out
}

// readerEvent handles a change on one reader and reports whether the
// reader list must be refreshed (the reader went away).
func (w *Watcher) readerEvent(ctx context.Context, sctx Context, st *scard.ReaderState, rs *readerState) bool {
	if rs == nil {
		return true
	}
	ev := st.EventState
	if ev&(scard.StateUnknown|scard.StateIgnore|scard.StateUnavailable) != 0 {
		return true
	}
	rep := w.reader(st.Reader)
	rep.Set(devices.StateIdle, devices.PowerOnline, devices.CodeOK, "NFC reader: ready")
	// pcsc-lite counts card insertions and removals in the upper 16 bits.
	// Two or more events since the last call mean a card came and went
	// (or was swapped) in between.
	before, after := uint32(st.CurrentState>>16), uint32(ev>>16)
	missed := st.CurrentState != scard.StateUnaware && (after-before)&0xffff >= 2
	present := ev&scard.StatePresent != 0 && ev&scard.StateMute == 0
	if missed && rs.present && present {
		rs.read = false // a different card now
	}
	if missed && !present && !rs.present {
		w.readError(st.Reader, devices.CodeCardRemoved, "NFC: a card was removed before it could be read; tap again", nil)
	}
	if !present {
		rs.present, rs.read = false, false
		return false
	}
	rs.present = true
	if rs.read {
		return false // the same card left on the reader: one tap, one event
	}
	rs.read = true
	w.readCard(ctx, sctx, st.Reader, st.Atr)
	return false
}

func (w *Watcher) readError(reader string, code devices.Code, reason string, err error) {
	id := devices.ID{Kind: devices.KindNFC, Path: reader}
	w.log.Warn("nfc read error", devices.KeyDevice, id.String(), devices.KeyCode, string(code), devices.KeyError, err)
	w.pub.Publish(devices.ReadError{Device: id, At: w.cfg.Now(), Code: code, Reason: reason, Err: err})
}

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
