package loyalty

import (
	"fmt"
	"sync"
	"time"
)

// HLC is a hybrid logical clock timestamp: wall-clock milliseconds in the
// upper 48 bits and a logical counter in the lower 16. It orders the events a
// terminal has seen even when its wall clock steps backwards; the cloud
// records it and never trusts it for ledger order.
type HLC uint64

// Millis returns the wall-clock part in Unix milliseconds.
func (h HLC) Millis() int64 { return int64(h >> 16) }

// Logical returns the counter part.
func (h HLC) Logical() uint16 { return uint16(h) }

// Time returns the wall-clock part as a time.
func (h HLC) Time() time.Time { return time.UnixMilli(h.Millis()).UTC() }

func (h HLC) String() string { return fmt.Sprintf("%d.%d", h.Millis(), h.Logical()) }

func makeHLC(ms int64, logical uint16) HLC { return HLC(uint64(ms)<<16 | uint64(logical)) }

// HLClock issues HLC timestamps. It is safe for concurrent use.
type HLClock struct {
	// Now reads the wall clock; time.Now when nil.
	Now func() time.Time

	mu   sync.Mutex
	last HLC
}

// Tick returns a timestamp greater than every one issued or observed before.
func (c *HLClock) Tick() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := c.wall()
	if wall > c.last.Millis() {
		c.last = makeHLC(wall, 0)
	} else {
		c.last = c.next(c.last)
	}
	return c.last
}

// Observe merges a timestamp seen from elsewhere (a peer, the cloud, a
// restarted journal), so later ticks come after it.
func (c *HLClock) Observe(remote HLC) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if remote > c.last {
		c.last = remote
	}
}

func (c *HLClock) next(h HLC) HLC {
	if h.Logical() == 0xffff {
		return makeHLC(h.Millis()+1, 0)
	}
	return h + 1
}

func (c *HLClock) wall() int64 {
	if c.Now != nil {
		return c.Now().UnixMilli()
	}
	return time.Now().UnixMilli()
}
