package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/internal/metrics"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Options is what an Agent is made of. Journal and CardKey are required;
// the rest is optional.
type Options struct {
	Config  *config.Config
	Journal Journal
	// CardKey is the program's key for card hashes (loyalty.CardKey).
	CardKey  loyalty.CardKey
	Receipts Receipts // nil: replies carry no receipt block
	Printer  Printer  // nil: the POS prints
	Uplink   Uplink   // nil: the terminal counts as offline
	Peers    Peers    // nil: no peers reported
	Logger   *slog.Logger
	Metrics  *metrics.Registry // nil: a private registry
	Version  string
	Now      func() time.Time
	Rand     io.Reader
	// SyncPoll is how often the uplink's state is read for the stream; default 500ms.
	SyncPoll time.Duration
	// Backlog, when set, counts the ops the cloud has not acknowledged and
	// gives the oldest one's time (the journal's Backlog): what the status
	// and the offline banner show, instead of the uplink's own figure,
	// which it refreshes lazily.
	Backlog func(ctx context.Context) (ops int64, oldest time.Time, err error)
	// Notify, when set, is called after every op is durable (the uplink's
	// Notify, so it ships at once).
	Notify func()
	// OnOp, when set, is called with every op once it is durable (the
	// store's peer gossip of offline redeems).
	OnOp func(ctx context.Context, op loyalty.Op)
}

// Agent is the terminal daemon: sessions, operations and the event stream.
type Agent struct {
	cfg     *config.Config
	journal Journal
	key     loyalty.CardKey
	rcpt    Receipts
	printer Printer
	uplink  Uplink
	peers   Peers
	log     *slog.Logger
	m       *agentMetrics
	reg     *metrics.Registry
	version string
	now     func() time.Time
	rand    io.Reader
	clock   loyalty.HLClock
	poll    time.Duration
	backlog func(ctx context.Context) (int64, time.Time, error)
	notify  func()
	onOp    func(ctx context.Context, op loyalty.Op)

	store *store
	hub   *hub
	rules atomic.Pointer[loyalty.Rules]

	mu       sync.Mutex
	sess     *session
	devices  map[string]DeviceHealth
	sync     SyncState
	receipts []RecentReceipt
	inflight map[string]bool
	cards    map[loyalty.CardHash]*cardLock

	started  bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutdown sync.Once
	closeErr error
	ops      sync.WaitGroup // operations in flight
	prints   sync.WaitGroup // print jobs in flight
	closing  atomic.Bool
	idle     atomic.Int64 // session idle timeout, ns; changed by Reload
	lastTick atomic.Int64 // monotonic-ish Unix ns of the loop's last turn
}

// RecentReceipt is a receipt preview for the cashier screen.
type RecentReceipt struct {
	Op     loyalty.OpID   `json:"op"`
	Kind   loyalty.OpKind `json:"kind"`
	Card   string         `json:"card"`
	Points loyalty.Points `json:"points"`
	Text   string         `json:"text"`
	// PNG is where the screen gets the receipt as a picture (see
	// ReceiptPNG); empty when the renderer makes no pictures.
	PNG string    `json:"png,omitempty"`
	At  time.Time `json:"at"`

	in *ReceiptInput // what the block was rendered from
}

const recentReceipts = 5

type cardLock struct {
	mu   sync.Mutex
	refs int
}

// Create makes an agent and opens its database in the configured state
// directory. Nothing runs until Start.
func Create(ctx context.Context, o Options) (*Agent, error) {
	if o.Journal == nil {
		return nil, errors.New("agent: no journal")
	}
	if len(o.CardKey) < 16 {
		return nil, errors.New("agent: the card key must be at least 16 bytes; check the enrollment files")
	}
	cfg := o.Config
	if cfg == nil {
		cfg = config.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if cfg.Terminal == "" {
		return nil, errors.New("agent: no terminal ID; set terminal in the config or enroll the terminal")
	}
	a := &Agent{
		cfg: cfg, journal: o.Journal, key: o.CardKey, rcpt: o.Receipts, printer: o.Printer,
		uplink: o.Uplink, peers: o.Peers, log: o.Logger, reg: o.Metrics, version: o.Version,
		now: o.Now, rand: o.Rand, poll: o.SyncPoll, backlog: o.Backlog, notify: o.Notify, onOp: o.OnOp,
		hub: newHub(), devices: map[string]DeviceHealth{}, inflight: map[string]bool{},
		cards: map[loyalty.CardHash]*cardLock{},
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "agent")
	if a.reg == nil {
		a.reg = metrics.New()
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	if a.poll <= 0 {
		a.poll = 500 * time.Millisecond
	}
	if a.version == "" {
		a.version = "dev"
	}
	a.clock.Now = a.now
	a.idle.Store(int64(cfg.Session.IdleTimeout.D()))
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("agent: create state directory: %w", err)
	}
	st, err := openStore(ctx, filepath.Join(cfg.StateDir, "agent.db"))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.store = st
	if body, err := st.latestRules(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("agent: %w", err)
	} else if body != nil {
		var r loyalty.Rules
		if err := json.Unmarshal(body, &r); err != nil {
			st.Close()
			return nil, fmt.Errorf("agent: cached rules unreadable: %w", err)
		}
		a.rules.Store(&r)
	}
	a.m = newAgentMetrics(a.reg, a)
	return a, nil
}

// Metrics returns the registry the agent records into.
func (a *Agent) Metrics() *metrics.Registry { return a.reg }

// Config returns the agent's configuration.
func (a *Agent) Config() *config.Config { return a.cfg }

// Start runs the background loops: idle sessions and the uplink's state.
func (a *Agent) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started {
		return errors.New("agent: already started")
	}
	if a.closing.Load() {
		return errors.New("agent: shut down")
	}
	a.started = true
	ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	a.wg.Add(1)
	go a.loop(ctx)
	a.log.Info("agent started", "terminal", a.cfg.Terminal, "store", a.cfg.Store, "rules", a.rulesVersion())
	return nil
}

func (a *Agent) loop(ctx context.Context) {
	defer a.wg.Done()
	t := time.NewTicker(min(a.poll, time.Second))
	defer t.Stop()
	a.pollSync()
	a.lastTick.Store(time.Now().UnixNano())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.pollSync()
			a.expireSession(a.now())
			a.lastTick.Store(time.Now().UnixNano())
		}
	}
}

// Healthy reports whether the agent's loop is turning: what the systemd
// watchdog pings for.
func (a *Agent) Healthy() bool {
	if a.closing.Load() {
		return false
	}
	last := a.lastTick.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < 10*time.Second
}

// Reload applies what can change while running (the session idle timeout)
// from cfg, and returns the keys whose change needs a restart.
func (a *Agent) Reload(cfg *config.Config) []string {
	a.idle.Store(int64(cfg.Session.IdleTimeout.D()))
	var restart []string
	old := a.cfg
	check := func(key string, same bool) {
		if !same {
			restart = append(restart, key)
		}
	}
	check("listen", old.Listen == cfg.Listen)
	check("state_dir", old.StateDir == cfg.StateDir)
	check("store", old.Store == cfg.Store)
	check("terminal", old.Terminal == cfg.Terminal)
	check("cloud", old.Cloud == cfg.Cloud)
	check("sync", old.Sync == cfg.Sync)
	check("offline", old.Offline == cfg.Offline)
	check("receipt", old.Receipt == cfg.Receipt)
	check("printer", reflect.DeepEqual(old.Printer, cfg.Printer))
	check("scanner", reflect.DeepEqual(old.Scanners, cfg.Scanners))
	check("nfc", reflect.DeepEqual(old.NFC, cfg.NFC))
	a.log.Info("configuration reloaded", "idle_timeout", cfg.Session.IdleTimeout.D(), "needs_restart", restart)
	return restart
}

// Shutdown stops new operations, waits for those in flight (bounded by
// ctx), stops the loops, closes the event stream and the agent's database.
// It does not close the journal, which the caller owns. Safe to call twice.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.shutdown.Do(func() {
		a.closing.Store(true)
		done := make(chan struct{})
		go func() { a.ops.Wait(); a.prints.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			a.closeErr = fmt.Errorf("agent: shutdown: operations or print jobs still in flight: %w", ctx.Err())
		}
		a.mu.Lock()
		if a.cancel != nil {
			a.cancel()
		}
		a.mu.Unlock()
		a.wg.Wait()
		a.hub.close()
		if err := a.store.Close(); err != nil && a.closeErr == nil {
			a.closeErr = fmt.Errorf("agent: close database: %w", err)
		}
		a.log.Info("agent stopped")
	})
	return a.closeErr
}

// begin registers an operation in flight; false once shutting down.
func (a *Agent) begin() bool {
	a.ops.Add(1)
	if a.closing.Load() {
		a.ops.Done()
		return false
	}
	return true
}

var errShuttingDown = &Error{Code: CodeUnavailable, Message: "This till is shutting down: nothing was recorded. Retry in a moment."}

// Subscribe returns the event stream, starting with a state event, and a
// function to stop it. The channel is closed when the subscriber falls
// behind or the agent shuts down.
func (a *Agent) Subscribe() (<-chan Event, func()) {
	return a.hub.subscribe(func() (string, any) { return EventState, a.State() }, a.now())
}

func (a *Agent) publish(typ string, data any) { a.hub.publish(typ, data, a.now()) }

// ScreenState is everything the cashier screen shows.
type ScreenState struct {
	Terminal string          `json:"terminal"`
	Store    string          `json:"store,omitempty"`
	Session  SessionView     `json:"session"`
	Devices  []DeviceHealth  `json:"devices"`
	Sync     SyncState       `json:"sync"`
	Receipts []RecentReceipt `json:"receipts"`
	Rules    uint32          `json:"rules_version"`
}

// State returns the current screen state.
func (a *Agent) State() ScreenState {
	a.mu.Lock()
	s := a.sess
	st := ScreenState{
		Terminal: a.cfg.Terminal, Store: a.cfg.Store,
		Devices: a.deviceList(), Sync: a.sync, Receipts: slices.Clone(a.receipts), Rules: a.rulesVersion(),
	}
	a.mu.Unlock()
	if s != nil {
		st.Session = a.sessionView(context.Background(), s, "")
	}
	if st.Receipts == nil {
		st.Receipts = []RecentReceipt{}
	}
	return st
}

func (a *Agent) deviceList() []DeviceHealth {
	ds := make([]DeviceHealth, 0, len(a.devices))
	for _, d := range a.devices {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(x, y DeviceHealth) int {
		if x.Device < y.Device {
			return -1
		}
		if x.Device > y.Device {
			return 1
		}
		return 0
	})
	return ds
}

// Status is what GET /v1/status reports.
type Status struct {
	Version  string         `json:"version"`
	Terminal string         `json:"terminal"`
	Store    string         `json:"store,omitempty"`
	Rules    uint32         `json:"rules_version"`
	Devices  []DeviceHealth `json:"devices"`
	Sync     SyncState      `json:"sync"`
	Peers    []Peer         `json:"peers"`
	Session  SessionView    `json:"session"`
}

// Status returns the terminal's status, its backlog counted now.
func (a *Agent) Status() Status {
	a.pollSync()
	st := a.State()
	s := Status{Version: a.version, Terminal: st.Terminal, Store: st.Store, Rules: st.Rules,
		Devices: st.Devices, Sync: st.Sync, Session: st.Session, Peers: []Peer{}}
	if a.peers != nil {
		s.Peers = append(s.Peers, a.peers.Peers()...)
	}
	return s
}

// SetDeviceHealth records a device's health and tells the stream.
func (a *Agent) SetDeviceHealth(h DeviceHealth) {
	if h.At.IsZero() {
		h.At = a.now()
	}
	a.mu.Lock()
	a.devices[h.Device] = h
	a.mu.Unlock()
	a.m.deviceUp.Set(boolFloat(h.OK()), h.Device, h.Kind)
	a.log.Info("device health", "device", h.Device, "state", h.State, "code", h.Code, "reason", h.Reason)
	a.publish(EventDevice, h)
}

// pollSync reads the uplink's state and publishes it when it changed.
func (a *Agent) pollSync() {
	var s SyncState
	if a.uplink != nil {
		s = a.uplink.State()
	}
	if a.backlog != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.poll)
		n, oldest, err := a.backlog(ctx)
		cancel()
		if err != nil {
			a.log.Warn("count the journal's backlog", keyErr, err)
		} else {
			s.BacklogOps, s.OldestOp = int(n), oldest
		}
	}
	a.mu.Lock()
	old := a.sync
	a.sync = s
	a.mu.Unlock()
	a.m.syncOnline.Set(boolFloat(s.Online))
	a.m.syncBacklog.Set(float64(s.BacklogOps))
	if old.Online != s.Online || old.BacklogOps != s.BacklogOps || old.LastError != s.LastError {
		if old.Online != s.Online {
			a.log.Info("sync state", "online", s.Online, "backlog", s.BacklogOps, "last_error", s.LastError)
		}
		a.publish(EventSync, s)
	}
}

// RefreshSync reads the uplink's state now instead of at the next poll.
func (a *Agent) RefreshSync() { a.pollSync() }

func (a *Agent) offline() bool {
	if a.uplink == nil {
		return true
	}
	return !a.uplink.State().Online
}

// Rules returns the cached rules, or nil before the first rules arrive.
func (a *Agent) Rules() *loyalty.Rules { return a.rules.Load() }

func (a *Agent) rulesVersion() uint32 {
	if r := a.rules.Load(); r != nil {
		return r.Version
	}
	return 0
}

// SetRules validates, stores and starts using rules; an older version than
// the one in use is ignored.
func (a *Agent) SetRules(ctx context.Context, r *loyalty.Rules) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("agent: set rules: %w", err)
	}
	if cur := a.rules.Load(); cur != nil && cur.Version > r.Version {
		return nil
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("agent: set rules: %w", err)
	}
	if err := a.store.saveRules(ctx, body, r.Version, a.now()); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.rules.Store(r)
	a.log.Info("rules updated", "version", r.Version)
	return nil
}

func (a *Agent) lockCard(h loyalty.CardHash) func() {
	a.mu.Lock()
	l := a.cards[h]
	if l == nil {
		l = &cardLock{}
		a.cards[h] = l
	}
	l.refs++
	a.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		a.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(a.cards, h)
		}
		a.mu.Unlock()
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
