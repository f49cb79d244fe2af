package peers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Journal is what Peers needs of the terminal's journal (offline/journal):
// a peer-ops table kept apart from the terminal's own ops, and the figure the
// offline policy counts against a card's allowance.
type Journal interface {
	// RecordPeerRedeem records a redeem another terminal of the store made
	// offline. It ignores an op ID it has recorded before (isNew false).
	RecordPeerRedeem(ctx context.Context, r PeerRedeem) (isNew bool, err error)
	// OfflineRedeemed returns the points card redeemed offline store-wide as
	// far as this journal knows: this terminal's own offline redeems plus the
	// peer ops it recorded, those a cloud snapshot does not cover yet.
	OfflineRedeemed(ctx context.Context, card loyalty.CardHash) (loyalty.Points, error)
}

// PeerOpDropper is implemented by a journal that can drop peer ops a cloud
// snapshot covers; Covered calls it when the journal has it.
type PeerOpDropper interface {
	DropPeerRedeems(ctx context.Context, ops []loyalty.OpID) error
}

// Watermark is how far the cloud has acknowledged a terminal's journal.
type Watermark struct {
	Epoch uint32
	Seq   uint64
}

// Covers reports whether an op at (epoch, seq) is at or below w.
func (w Watermark) Covers(epoch uint32, seq uint64) bool {
	return epoch == w.Epoch && seq <= w.Seq && w.Seq > 0
}

// State is what this terminal publishes in its tags.
type State struct {
	Online  bool      // the cloud answers
	Backlog int       // journal ops not yet acknowledged by the cloud
	Acked   Watermark // highest op the cloud acknowledged
}

// Stats count what happened to events since Start.
type Stats struct {
	Announced  int // events this terminal broadcast (re-announcements included)
	Recorded   int // peer redeems newly recorded in the journal
	Duplicates int // events for op IDs already known
	Rejected   int // malformed, unknown-terminal or badly signed events
	Failed     int // valid events the journal could not record (retried on the next copy)
	Queries    int // questions asked before a redeem
	Answers    int // answers received to them
	Dropped    int // peer ops dropped because a cloud snapshot covers them
}

// Peers is this terminal's membership of its store's serf cluster. Make it
// with New, register nothing more, then Start; Shutdown may be called twice.
type Peers struct {
	cfg     Config
	journal Journal
	log     *slog.Logger

	events     chan serf.Event
	reannounce chan struct{}
	retag      chan struct{}

	mu       sync.Mutex
	serf     *serf.Serf
	keyring  *memberlist.Keyring // nil: gossip in the clear
	roster   *Roster
	state    State
	started  bool
	stopped  bool
	known    map[loyalty.OpID]*knownEvent
	gone     map[loyalty.OpID]time.Time // dropped ops, so replays stay ignored
	retry    map[loyalty.OpID][]byte    // valid events the journal failed to record
	acks     map[string]ackSeen
	stats    Stats
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

type knownEvent struct {
	ev      Event
	own     bool
	learned time.Time // local clock
	ackedAt time.Time // own events: when the cloud acknowledged it
}

type ackSeen struct {
	wm Watermark
	at time.Time // local clock when this watermark was first seen
}

// New checks cfg and returns a Peers that has not touched the network yet.
func New(cfg Config, journal Journal) (*Peers, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if journal == nil {
		return nil, fmt.Errorf("%w: no journal", ErrConfig)
	}
	return &Peers{
		cfg:        cfg,
		journal:    journal,
		log:        cfg.Logger.With(logComponent, "peers", logTerminal, cfg.Terminal),
		events:     make(chan serf.Event, 1024),
		reannounce: make(chan struct{}, 1),
		retag:      make(chan struct{}, 1),
		roster:     cfg.Roster,
		known:      make(map[loyalty.OpID]*knownEvent),
		gone:       make(map[loyalty.OpID]time.Time),
		retry:      make(map[loyalty.OpID][]byte),
		acks:       make(map[string]ackSeen),
	}, nil
}

// Start binds the gossip transport, creates the serf member and starts the
// background loops: events, retry-join and re-announcement. The first join
// happens in the background, so Start does not wait for the other tills.
func (p *Peers) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.stopped:
		return ErrShutdown
	case p.started:
		return fmt.Errorf("peers: already started")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start peers: %w", err)
	}
	sc, err := p.serfConfig()
	if err != nil {
		return err
	}
	s, err := createSerf(sc)
	if err != nil {
		return fmt.Errorf("start store peers on %s:%d: %w; check that the gossip port is free and the address is this machine's",
			p.cfg.BindAddr, p.cfg.BindPort, err)
	}
	p.serf = s
	p.started = true
	loopCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(4)
	go func() { defer p.wg.Done(); p.runEvents(loopCtx) }()
	go func() { defer p.wg.Done(); p.runJoin(loopCtx) }()
	go func() { defer p.wg.Done(); p.runReannounce(loopCtx) }()
	go func() { defer p.wg.Done(); p.runTags(loopCtx) }()
	p.triggerReannounce()
	p.log.Info("store peers started", "addr", s.LocalMember().Addr.String(), "port", s.LocalMember().Port,
		"store", p.cfg.Store, "encrypted", s.EncryptionEnabled())
	return nil
}

// createSerf guards serf.Create: serf.DefaultConfig panics when the host
// name cannot be read, and a library must not panic on its environment.
func createSerf(sc *serf.Config) (s *serf.Serf, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("serf: %v", r)
		}
	}()
	return serf.Create(sc)
}

func defaultSerfConfig() (c *serf.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("serf defaults: %v", r)
		}
	}()
	return serf.DefaultConfig(), nil
}

func (p *Peers) serfConfig() (*serf.Config, error) {
	sc, err := defaultSerfConfig()
	if err != nil {
		return nil, err
	}
	c := p.cfg
	sc.NodeName = c.Terminal
	sc.Tags = p.tagsLocked()
	sc.EventCh = p.events
	sc.SnapshotPath = c.SnapshotPath
	sc.RejoinAfterLeave = true // a till that restarts rejoins from its snapshot
	sc.KeyringFile = c.KeyringPath
	sc.Logger = serfLogger(p.log.With(logComponent, "serf"))
	sc.LogOutput = nil

	ml := memberlist.DefaultLANConfig()
	ml.Name = c.Terminal
	ml.Label = c.Store
	ml.BindAddr = c.BindAddr
	ml.BindPort = c.BindPort
	ml.AdvertiseAddr = c.AdvertiseAddr
	ml.AdvertisePort = c.BindPort
	if c.AdvertisePort != 0 {
		ml.AdvertisePort = c.AdvertisePort
	}
	ml.Transport = c.Transport
	ml.Logger = sc.Logger
	keyring, err := p.loadKeyring()
	if err != nil {
		return nil, err
	}
	ml.Keyring = keyring
	p.keyring = keyring

	t := c.Timing
	setDur(&ml.GossipInterval, t.GossipInterval)
	setDur(&ml.ProbeInterval, t.ProbeInterval)
	setDur(&ml.ProbeTimeout, t.ProbeTimeout)
	setDur(&ml.PushPullInterval, t.PushPullInterval)
	setDur(&ml.TCPTimeout, t.TCPTimeout)
	if t.PushPullInterval != 0 {
		ml.GossipToTheDeadTime = t.PushPullInterval
	}
	if t.SuspicionMult != 0 {
		ml.SuspicionMult = t.SuspicionMult
	}
	setDur(&sc.ReconnectInterval, t.ReconnectInterval)
	setDur(&sc.ReapInterval, t.ReapInterval)
	// A leave takes up to two broadcast timeouts and the propagate delay:
	// keep the three within LeaveTimeout.
	sc.BroadcastTimeout = min(sc.BroadcastTimeout, c.LeaveTimeout*2/5)
	sc.LeavePropagateDelay = min(sc.LeavePropagateDelay, c.LeaveTimeout/5)
	setDur(&sc.BroadcastTimeout, t.BroadcastTimeout)
	sc.MemberlistConfig = ml
	return sc, nil
}

func setDur(dst *time.Duration, v time.Duration) {
	if v != 0 {
		*dst = v
	}
}

// Shutdown leaves the cluster gracefully (about LeaveTimeout at most; not
// at all when ctx is already done), then stops serf and the background loops. It is safe to call twice and
// before Start; the second call returns the first one's result.
func (p *Peers) Shutdown(ctx context.Context) error {
	p.shutOnce.Do(func() {
		p.mu.Lock()
		p.stopped = true
		s, cancel := p.serf, p.cancel
		p.mu.Unlock()
		if s == nil {
			return
		}
		// Leave cannot be abandoned half way (memberlist panics when shut
		// down under a leave), so serf's own timeouts bound it to about
		// LeaveTimeout (see serfConfig); a done ctx skips it.
		if ctx.Err() == nil {
			if err := s.Leave(); err != nil {
				p.log.Warn("leave the store cluster; shutting down anyway", logErr, err)
			}
		}
		var errs []error
		if err := s.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("shut down serf: %w", err))
		}
		cancel()
		p.wg.Wait()
		p.shutErr = errors.Join(errs...)
	})
	return p.shutErr
}

// SetState publishes whether this terminal reaches the cloud, its backlog
// and its acknowledged watermark in its tags, and forgets its own redeems
// the cloud acknowledged more than Retention ago, and peers' redeems it
// learned more than Retention ago. It does not wait for
// the network: a background loop gossips the new tags.
func (p *Peers) SetState(st State) {
	p.mu.Lock()
	p.state = st
	now := p.cfg.Now()
	for id, k := range p.known {
		if !k.own {
			// Peers' events are served in answers for Retention; the
			// journal keeps counting them until a snapshot covers them.
			if now.Sub(k.learned) > p.cfg.Retention {
				delete(p.known, id)
				p.gone[id] = now
			}
			continue
		}
		r := k.ev.Redeem
		if st.Acked.Covers(r.Epoch, r.Seq) && k.ackedAt.IsZero() {
			k.ackedAt = now
		}
		if !k.ackedAt.IsZero() && now.Sub(k.ackedAt) > p.cfg.Retention {
			delete(p.known, id)
			p.gone[id] = now
		}
	}
	for id, at := range p.gone {
		// Past this, a replay meets the journal, which ignores a redeem its
		// snapshot covers.
		if now.Sub(at) > p.cfg.Retention {
			delete(p.gone, id)
		}
	}
	p.mu.Unlock()
	select {
	case p.retag <- struct{}{}:
	default:
	}
}

// runTags gossips the latest state. serf's SetTags waits for the broadcast,
// which SetState's callers must not.
func (p *Peers) runTags(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.retag:
		}
		p.mu.Lock()
		s, tags := p.serf, p.tagsLocked()
		p.mu.Unlock()
		if err := s.SetTags(tags); err != nil {
			p.log.Debug("publish terminal state to store peers; it goes out with the next gossip", logErr, err)
		}
	}
}

// State returns what SetState last published.
func (p *Peers) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// SetRoster replaces the store roster (the cloud handed out a new one).
// This terminal must stay in it with the same key.
func (p *Peers) SetRoster(r *Roster) error {
	pub, ok := r.Key(p.cfg.Terminal)
	if !ok || !pub.Equal(p.cfg.SigningKey.Public()) {
		return fmt.Errorf("%w: the new roster does not list terminal %q with this terminal's key; keeping the old one", ErrConfig, p.cfg.Terminal)
	}
	p.mu.Lock()
	p.roster = r
	p.mu.Unlock()
	return nil
}

// Roster returns the store roster in use.
func (p *Peers) Roster() *Roster {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.roster
}

// Stats returns the event counters.
func (p *Peers) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// LocalAddr returns the gossip address peers dial, once started.
func (p *Peers) LocalAddr() (string, error) {
	s, err := p.running()
	if err != nil {
		return "", err
	}
	m := s.LocalMember()
	return fmt.Sprintf("%s:%d", m.Addr, m.Port), nil
}

func (p *Peers) running() (*serf.Serf, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.stopped:
		return nil, ErrShutdown
	case p.serf == nil:
		return nil, ErrNotStarted
	}
	return p.serf, nil
}

// loadKeyring returns the gossip keyring: Config.Keys (the primary
// first), then any other key of the persisted file (rotations another
// terminal drove while this one was down), so a restart understands both
// the store as this terminal last knew it and as its peers may have moved
// it on; SetKeyring reconciles the rest. Without Config.Keys the file is
// the keyring. The file is written when it does not exist yet.
func (p *Peers) loadKeyring() (*memberlist.Keyring, error) {
	keys := slices.Clone(p.cfg.Keys)
	if path := p.cfg.KeyringPath; path != "" {
		fileKeys, err := readKeyringFile(path)
		switch {
		case err == nil:
			for _, k := range fileKeys {
				if !slices.ContainsFunc(keys, func(c []byte) bool { return bytes.Equal(c, k) }) {
					keys = append(keys, k)
				}
			}
		case errors.Is(err, os.ErrNotExist):
			if len(keys) > 0 {
				if err := writeKeyringFile(path, keys); err != nil {
					return nil, err
				}
			}
		default:
			return nil, err
		}
	}
	if len(keys) == 0 {
		p.log.Warn("gossip is not encrypted: no store key; enroll the terminal to get one")
		return nil, nil
	}
	kr, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("%w: gossip keyring: %w", ErrConfig, err)
	}
	return kr, nil
}
