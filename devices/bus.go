package devices

import (
	"context"
	"sync"
	"time"
)

// Default settings of a Bus.
const (
	DefaultReadTTL    = 5 * time.Second // a scan or tap nobody took is dropped after this
	DefaultReadQueue  = 16              // reads kept waiting at most; the oldest goes first
	DefaultSubscriber = 64              // events buffered per subscriber
)

// Bus carries events from drivers to the agent. Scans and taps wait in a
// short queue for NextRead and expire after ReadTTL; every event also goes
// to each subscriber (a slow subscriber loses events, counted, rather than
// stall a driver); the latest Health of each device is kept for Health().
//
// Publish never blocks. A Bus is safe for concurrent use.
type Bus struct {
	ReadTTL   time.Duration
	ReadQueue int
	Now       func() time.Time

	mu      sync.Mutex
	wake    chan struct{} // closed and replaced when a read is queued
	reads   []queued
	expired int
	health  map[string]Health
	order   []string // device keys in first-seen order
	subs    map[*subscriber]struct{}
}

type queued struct {
	ev Event
	at time.Time // when queued, by Now
}

type subscriber struct {
	ch      chan Event
	dropped int
}

// NewBus returns a Bus with the default settings.
func NewBus() *Bus {
	return &Bus{
		ReadTTL:   DefaultReadTTL,
		ReadQueue: DefaultReadQueue,
		Now:       time.Now,
		wake:      make(chan struct{}),
		health:    make(map[string]Health),
		subs:      make(map[*subscriber]struct{}),
	}
}

var _ Publisher = (*Bus)(nil)

// Publish hands an event to the bus.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := e.(type) {
	case HealthEvent:
		k := ev.Device.String()
		if _, ok := b.health[k]; !ok {
			b.order = append(b.order, k)
		}
		b.health[k] = ev.Health
	case Scan, Tap:
		b.dropExpiredLocked()
		if len(b.reads) >= b.ReadQueue {
			b.reads = b.reads[1:]
			b.expired++
		}
		b.reads = append(b.reads, queued{ev: e, at: b.Now()})
		close(b.wake)
		b.wake = make(chan struct{})
	}
	for s := range b.subs {
		select {
		case s.ch <- e:
		default:
			s.dropped++
		}
	}
}

func (b *Bus) dropExpiredLocked() {
	now := b.Now()
	i := 0
	for i < len(b.reads) && now.Sub(b.reads[i].at) >= b.ReadTTL {
		i++
	}
	if i > 0 {
		b.expired += i
		b.reads = append(b.reads[:0], b.reads[i:]...)
	}
}

// NextRead waits for the next scan or tap that has not expired and takes
// it: no one else will get it. It returns ctx.Err() when ctx ends first.
func (b *Bus) NextRead(ctx context.Context) (Event, error) {
	for {
		b.mu.Lock()
		b.dropExpiredLocked()
		if len(b.reads) > 0 {
			e := b.reads[0].ev
			b.reads = b.reads[1:]
			b.mu.Unlock()
			return e, nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Expired reports how many scans and taps were dropped untaken so far.
func (b *Bus) Expired() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropExpiredLocked()
	return b.expired
}

// Health returns the latest health of every device that reported one, in
// the order they first reported.
func (b *Bus) Health() []Health {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Health, 0, len(b.order))
	for _, k := range b.order {
		out = append(out, b.health[k])
	}
	return out
}

// Subscribe returns a channel that gets every event published from now on,
// buffered to n (DefaultSubscriber if n <= 0), and a function that ends the
// subscription and reports how many events it lost because it was slow.
func (b *Bus) Subscribe(n int) (<-chan Event, func() (dropped int)) {
	if n <= 0 {
		n = DefaultSubscriber
	}
	s := &subscriber{ch: make(chan Event, n)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return s.ch, func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		once.Do(func() {
			delete(b.subs, s)
			close(s.ch)
		})
		return s.dropped
	}
}
