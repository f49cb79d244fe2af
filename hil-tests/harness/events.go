package harness

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// Event is one server-sent event of the agent's GET /v1/events.
type Event struct {
	Type string
	Data string
}

// Events follows the agent's event stream until ctx ends and keeps every
// event, as the cashier screen sees them.
type Events struct {
	mu      sync.Mutex
	all     []Event
	changed chan struct{}
	err     error
}

// Follow opens GET /v1/events and collects its events in the background.
func (a *Agent) Follow(ctx context.Context) (*Events, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"/v1/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/events: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET /v1/events: status %d", resp.StatusCode)
	}
	ev := &Events{changed: make(chan struct{})}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var cur Event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.Type != "" || cur.Data != "" {
					ev.add(cur)
				}
				cur = Event{}
			case strings.HasPrefix(line, "event:"):
				cur.Type = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				cur.Data += strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			}
		}
		ev.mu.Lock()
		ev.err = sc.Err()
		ev.mu.Unlock()
	}()
	return ev, nil
}

func (e *Events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
	close(e.changed)
	e.changed = make(chan struct{})
}

// Seen returns the events received so far.
func (e *Events) Seen() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.all...)
}

// Wait waits until an event satisfies match, and returns it.
func (e *Events) Wait(ctx context.Context, match func(Event) bool) (Event, error) {
	for i := 0; ; {
		e.mu.Lock()
		evs, ch := e.all[i:], e.changed
		e.mu.Unlock()
		for _, ev := range evs {
			if match(ev) {
				return ev, nil
			}
		}
		i += len(evs)
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("no matching event among %d: %w", i, ctx.Err())
		}
	}
}
