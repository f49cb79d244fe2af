package uplink

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// ErrDiverged reports that the cloud holds other ops than this journal's
// at sequences of an epoch: the journal was restored from a backup with
// its epoch sidecar, or two tills were enrolled as one terminal. The
// uplink sends nothing past those ops and marks nothing; the till keeps
// working offline and keeps every op until an operator acts.
var ErrDiverged = errors.New("the cloud holds other ops than this journal's at these sequences")

// Defaults for Config.
const (
	DefaultMaxOps         = 1000
	DefaultMaxBytes       = 1 << 20
	DefaultMaxAge         = 2 * time.Second
	DefaultRequestTimeout = 15 * time.Second
	DefaultMinBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Minute
	DefaultMaxRetryAfter  = 10 * time.Minute
	DefaultPoll           = 5 * time.Second
	DefaultIdleProbe      = 5 * time.Minute
)

// minIdleProbe is the shortest IdleProbe: a shorter one is raised to it,
// so that an idle uplink never posts probes back to back.
const minIdleProbe = time.Second

// Config is what an Uplink needs. Start from DefaultConfig.
type Config struct {
	// URL is the cloud's base URL (https://ledger.example.com); batches go
	// to URL/v1/batches.
	URL string
	// Signer holds the terminal's key; its name is the terminal ID.
	Signer *batch.Signer
	// CloudKey verifies the cloud's acks.
	CloudKey ed25519.PublicKey
	// Client sends the requests; each has its own RequestTimeout.
	Client *http.Client

	// A batch is cut when it holds MaxOps ops or MaxBytes of canonical op
	// encoding, or when its oldest op has waited MaxAge (0: at once).
	MaxOps   int
	MaxBytes int
	MaxAge   time.Duration

	RequestTimeout time.Duration
	// MinBackoff doubles after each consecutive failure up to MaxBackoff;
	// the wait is drawn uniformly from [d/2, d] (jitter).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxRetryAfter caps a Retry-After the cloud asks for.
	MaxRetryAfter time.Duration
	// Poll is how often an idle uplink looks for new ops when nobody
	// calls Notify.
	Poll time.Duration
	// IdleProbe is how often an uplink with nothing to send checks that
	// the cloud still holds the last op it acknowledged (it may have been
	// restored from a backup that lacks it): at start, and then when
	// IdleProbe has passed since its last post, it sends that op again
	// as a probe (see doc.go), which the cloud never applies. 0 or less
	// disables it; a till that does not sell then learns of such a
	// restore only at its next sale. At least a second.
	IdleProbe time.Duration

	// RulesVersion returns the rules version the terminal holds, for the
	// batch header; nil sends 0.
	RulesVersion func() uint32
	// Now reads the clock; time.Now when nil.
	Now func() time.Time
	// Logger is the component's logger (the caller names the component);
	// slog.Default when nil.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every Default* value set.
func DefaultConfig() Config {
	return Config{
		MaxOps:         DefaultMaxOps,
		MaxBytes:       DefaultMaxBytes,
		MaxAge:         DefaultMaxAge,
		RequestTimeout: DefaultRequestTimeout,
		MinBackoff:     DefaultMinBackoff,
		MaxBackoff:     DefaultMaxBackoff,
		MaxRetryAfter:  DefaultMaxRetryAfter,
		Poll:           DefaultPoll,
		IdleProbe:      DefaultIdleProbe,
	}
}

// Uplink sends one terminal's journal to the cloud. Create it with New,
// then either Start it (background loop, stopped by Shutdown) or drive it
// with Sync.
type Uplink struct {
	j        Journal
	cfg      Config
	endpoint string
	log      *slog.Logger
	wake     chan struct{}

	// round serializes rounds: Run and Sync never interleave.
	round sync.Mutex

	mu        sync.Mutex
	state     State
	backlogAt time.Time // when state's backlog was last counted
	// outboxEmpty is set when the uplink knows the journal's outbox is
	// empty (it is its only writer); lastOfOutbox while the batch in flight
	// is the only one in it.
	outboxEmpty, lastOfOutbox bool
	failures                  int
	// chain is the hash of the batch that ended at (epoch, seq), as the
	// cloud last told us; it is the Prev of the next batch.
	chain struct {
		epoch uint32
		seq   uint64
		hash  batch.Hash
		ok    bool
	}
	// from, when set, is where the next batch is cut from: the end of the
	// batch acknowledged last, or where a refusal (a gap ack, a hint)
	// told the uplink to re-seal from, or the journal's start when the
	// cloud lost an epoch (see resendAll). Until it is set (after a
	// start), batches are cut from resumePoint. It may be behind the
	// journal's acknowledgement watermark: a cloud restored from a backup
	// is sent again what it lost.
	from position
	// crossed is where the cloud's last ack, a probe's replay (see
	// probeBeforeEpoch) or a batch's, showed it held this journal's ops,
	// after which the next epoch's batches go without a probe; a
	// failed send forgets it, as the cloud may come back restored from a
	// backup (see probeAhead), and so does an idle round (see cut). A probe is known by its sealed bytes (see
	// isProbe), not kept here.
	crossed position
	// idleAt is when an uplink with nothing to send next probes the last
	// op the cloud acknowledged (see idleProbe): IdleProbe after its last
	// post; zero, at once, until the first.
	idleAt time.Time
	// fromRefusal is set while from is where a refusal had the uplink
	// re-seal from with the hash the chain needs, until the next ack: a
	// batch from there refused again would loop (see refused).
	fromRefusal bool
	// held, when set, is how far the cloud holds an epoch beyond what its
	// acks proved for this journal: batches cut below it end there, so
	// that the cloud compares them op by op with what it holds. No op is
	// taken as delivered on a watermark alone.
	held position
	// pending tracks the age of a batch not yet full.
	pendingFirst struct {
		epoch uint32
		seq   uint64
	}
	pendingSince time.Time
	// shrink, when non-zero, caps the batches cut until shrinkUntil, after
	// a 413 (see shrinkFor).
	shrink      int
	shrinkUntil time.Time

	startMu sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
}

// position is a place in the journal, (epoch, seq), when ok.
type position struct {
	epoch uint32
	seq   uint64
	ok    bool
}

// New returns an Uplink for journal j. It checks the configuration.
func New(j Journal, cfg Config) (*Uplink, error) {
	d := DefaultConfig()
	if cfg.MaxOps <= 0 {
		cfg.MaxOps = d.MaxOps
	}
	cfg.MaxOps = min(cfg.MaxOps, batch.MaxBatchOps)
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = d.MaxBytes
	}
	cfg.MaxBytes = min(cfg.MaxBytes, batch.MaxBatchBytes/2)
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = d.RequestTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = d.MinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(d.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = d.MaxRetryAfter
	}
	if cfg.Poll <= 0 {
		cfg.Poll = d.Poll
	}
	if cfg.IdleProbe > 0 {
		cfg.IdleProbe = max(cfg.IdleProbe, minIdleProbe)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case j == nil:
		return nil, errors.New("uplink: no journal")
	case cfg.Signer == nil:
		return nil, errors.New("uplink: no terminal key; enroll the terminal first (tillpoint enroll)")
	case len(cfg.CloudKey) != ed25519.PublicKeySize:
		return nil, errors.New("uplink: no cloud public key; enroll the terminal first (tillpoint enroll)")
	}
	base, err := url.Parse(cfg.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("uplink: cloud URL %q: want http(s)://host[:port]", cfg.URL)
	}
	return &Uplink{
		j:        j,
		cfg:      cfg,
		endpoint: strings.TrimSuffix(cfg.URL, "/") + "/v1/batches",
		log:      cfg.Logger.With(slog.String(logTerminal, cfg.Signer.Name())),
		wake:     make(chan struct{}, 1),
	}, nil
}

// Notify tells the uplink that the journal has new ops: an idle uplink
// looks at once instead of at its next poll.
func (u *Uplink) Notify() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// State returns a copy of the uplink's current state.
func (u *Uplink) State() State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.state
}

// Start runs the uplink in the background until Shutdown.
func (u *Uplink) Start(ctx context.Context) {
	u.startMu.Lock()
	defer u.startMu.Unlock()
	if u.cancel != nil {
		return
	}
	ctx, u.cancel = context.WithCancel(context.WithoutCancel(ctx))
	u.done = make(chan struct{})
	go func() {
		defer close(u.done)
		u.Run(ctx)
	}()
}

// Shutdown stops the background loop and waits for it, at most until ctx
// ends. A batch in flight is abandoned; it is resent after the next start.
// Shutdown is safe to call twice and without Start.
func (u *Uplink) Shutdown(ctx context.Context) error {
	u.startMu.Lock()
	cancel, done := u.cancel, u.done
	u.startMu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("uplink: shutdown: %w", ctx.Err())
	}
}

// Run sends batches until ctx ends: at once while there is a full batch
// or an outbox entry, after a backoff when a round fails, and otherwise on
// Notify, at the poll interval or when a partial batch comes of age.
func (u *Uplink) Run(ctx context.Context) {
	u.refreshBacklog(ctx)
	for ctx.Err() == nil {
		r := u.step(ctx, false)
		if ctx.Err() != nil {
			return // shutting down: a cancelled request is no failure
		}
		if r.progress && r.err == nil {
			continue
		}
		wait := r.wait
		if r.err != nil {
			wait = u.failed(r.err, r.retryAfter)
		} else if wait <= 0 || wait > u.cfg.Poll {
			wait = u.cfg.Poll
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-u.wake:
			if r.err != nil {
				// a new op does not cut a backoff short: the cloud asked us to wait
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		}
		t.Stop()
	}
}

// Sync sends until every op in the journal is acknowledged, ignoring
// MaxAge; it retries failures with the configured backoff and returns nil
// when done, or the last failure with ctx's error when ctx ends first.
func (u *Uplink) Sync(ctx context.Context) error {
	var last error
	for {
		r := u.step(ctx, true)
		switch {
		case r.err != nil:
			last = r.err
			wait := u.failed(r.err, r.retryAfter)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("uplink: sync: %w (last error: %w)", ctx.Err(), last)
			case <-t.C:
			}
		case !r.progress:
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("uplink: sync: %w", ctx.Err())
		}
	}
}

// failed records a failed round and returns how long to wait.
func (u *Uplink) failed(err error, retryAfter time.Duration) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.failures++
	wait := retryAfter
	if wait <= 0 {
		d := u.cfg.MinBackoff << min(u.failures-1, 30)
		if d > u.cfg.MaxBackoff || d <= 0 {
			d = u.cfg.MaxBackoff
		}
		wait = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
	wait = min(wait, u.cfg.MaxRetryAfter)
	now := u.cfg.Now()
	u.state.Online = false
	u.state.LastError = err.Error()
	u.state.LastErrorAt = now
	u.state.NextAttempt = now.Add(wait)
	u.log.Warn("send failed", slog.String(logError, err.Error()), slog.Duration(logRetryIn, wait), slog.Int(logFailures, u.failures))
	return wait
}

// Log keys.
const (
	logTerminal = "terminal"
	logError    = "error"
	logRetryIn  = "retry_in"
	logFailures = "failures"
	logEpoch    = "epoch"
	logFirst    = "first"
	logLast     = "last"
	logBatch    = "batch"
	logWater    = "watermark"
	logOp       = "op"
	logSeq      = "seq"
	logReason   = "reason"
	logStatus   = "status"
)
