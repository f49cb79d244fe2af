package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// Feed pulls the cloud's signed feeds for this terminal: the current rules
// (GET /v1/rules) and the member snapshots of the store (GET
// /v1/snapshots), verifies them with the cloud's key and hands them to the
// agent and the journal. Nothing unsigned or wrongly signed is used.
type Feed struct {
	URL      string // the cloud's base URL
	Program  string
	Store    string // this till's store: a snapshot set signed for another is refused
	CloudKey ed25519.PublicKey
	// Sign adds the terminal's signature to a request (enroll.State.SignRequest).
	Sign   func(req *http.Request, now time.Time)
	Client *http.Client
	// PutSnapshots stores snapshots (the journal's PutSnapshots).
	PutSnapshots func(ctx context.Context, snaps []loyalty.Snapshot) error
	Agent        *Agent
	Logger       *slog.Logger
	// Every is how often the feeds are pulled; default
	// config.DefaultPullInterval.
	Every time.Duration
	// MaxBackoff caps the wait before retrying a failed pull (the first
	// retry comes after a second, doubling); default Every.
	MaxBackoff time.Duration
	// Online, when set, reports whether the link to the cloud works as the
	// uplink last saw it: when it turns true again after an outage the
	// feeds are pulled at once, not at the next turn.
	Online func() bool

	mu      sync.Mutex
	lastErr error
	lastOK  time.Time
}

// Failing returns the last pull's error, nil when it succeeded (or none ran).
func (f *Feed) Failing() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

func (f *Feed) note(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr = err
	if err == nil {
		f.lastOK = time.Now()
	}
}

// maxFeedBody bounds a feed response.
const maxFeedBody = 16 << 20

// Pull fetches the rules, then every page of snapshots.
func (f *Feed) Pull(ctx context.Context) error {
	err := f.pull(ctx)
	if ctx.Err() == nil {
		f.note(err)
	}
	return err
}

func (f *Feed) pull(ctx context.Context) error {
	body, err := f.get(ctx, "/v1/rules")
	if err != nil {
		return fmt.Errorf("rules feed: %w", err)
	}
	doc, err := batch.OpenRules(body, f.Program, f.CloudKey)
	if err != nil {
		return fmt.Errorf("rules feed: %w", err)
	}
	if err := f.Agent.SetRules(ctx, &doc.Rules); err != nil {
		return fmt.Errorf("rules feed: %w", err)
	}
	after := ""
	for range 1000 {
		path := "/v1/snapshots"
		if after != "" {
			path += "?after=" + url.QueryEscape(after)
		}
		body, err := f.get(ctx, path)
		if err != nil {
			return fmt.Errorf("snapshot feed: %w", err)
		}
		set, err := batch.OpenSnapshots(body, f.Program, f.CloudKey)
		if err != nil {
			return fmt.Errorf("snapshot feed: %w", err)
		}
		if set.Store != f.Store {
			// Allowances are per store: another store's would let this
			// till's cards redeem what the cloud risked there.
			return fmt.Errorf("snapshot feed: the cloud sent store %q's snapshots to a till of store %q; check the cloud URL and this till's enrollment", set.Store, f.Store)
		}
		if len(set.Snapshots) > 0 {
			if err := f.PutSnapshots(ctx, set.Snapshots); err != nil {
				return fmt.Errorf("snapshot feed: store: %w", err)
			}
		}
		if set.Next == "" {
			return nil
		}
		after = set.Next
	}
	return errors.New("snapshot feed: more than 1000 pages")
}

func (f *Feed) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", f.URL+path, nil)
	if err != nil {
		return nil, err
	}
	f.Sign(req, time.Now())
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFeedBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxFeedBody {
		return nil, fmt.Errorf("GET %s: response over %d bytes", path, maxFeedBody)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, body)
	}
	return body, nil
}

// feedWatch is how often Run looks at the link's state between pulls.
const feedWatch = 250 * time.Millisecond

// Run pulls the feeds now, then every Every, and at once when Online turns
// true after an outage, until ctx ends. A failed pull is logged and
// retried after a backoff of at most MaxBackoff (the cache keeps working).
func (f *Feed) Run(ctx context.Context) {
	every := f.Every
	if every <= 0 {
		every = config.DefaultPullInterval
	}
	maxBackoff := f.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = every
	}
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(min(every, feedWatch))
	defer t.Stop()
	next, failures, wasOnline := time.Now(), 0, true
	for {
		online := f.Online == nil || f.Online()
		back := online && !wasOnline
		wasOnline = online
		if now := time.Now(); back || !now.Before(next) {
			if back {
				log.Info("the link to the cloud is back; pulling the feeds now")
			}
			err := f.Pull(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				failures++
				wait := min(time.Second<<min(failures-1, 16), maxBackoff, every)
				next = now.Add(wait)
				log.Warn("cloud feeds not refreshed; the till works from its cache", keyErr, err, "retry_in", wait)
			default:
				failures, next = 0, now.Add(every)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
