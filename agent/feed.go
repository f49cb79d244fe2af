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
	CloudKey ed25519.PublicKey
	// Sign adds the terminal's signature to a request (enroll.State.SignRequest).
	Sign   func(req *http.Request, now time.Time)
	Client *http.Client
	// PutSnapshots stores snapshots (the journal's PutSnapshots).
	PutSnapshots func(ctx context.Context, snaps []loyalty.Snapshot) error
	Agent        *Agent
	Logger       *slog.Logger
	// Every is how often the feeds are pulled; default one minute.
	Every time.Duration

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

// Run pulls the feeds now and then every Every until ctx ends; a failed
// pull is logged and retried at the next turn (the cache keeps working).
func (f *Feed) Run(ctx context.Context) {
	every := f.Every
	if every <= 0 {
		every = time.Minute
	}
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := f.Pull(ctx); err != nil && ctx.Err() == nil {
			log.Warn("cloud feeds not refreshed; the till works from its cache", keyErr, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
