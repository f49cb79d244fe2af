// Package logevery spaces the log lines of a condition that, while it
// lasts, would otherwise be logged many times a second: conflicting
// transactions, a failing checkpointer, a full disk, a database that does
// not answer. It only decides when to log, keeping count of what it held
// back; it never logs itself.
package logevery

import (
	"sync"
	"time"
)

// Interval is the least time between two lines about one condition.
const Interval = time.Minute

// Limiter lets the first occurrence of such a condition be logged, then
// at most one every Interval, and counts the occurrences in between
// for the line that is logged. Safe for concurrent use; the zero value is
// ready.
type Limiter struct {
	mu    sync.Mutex
	last  time.Time // when a line was last let through
	count int       // occurrences since
}

// Tick counts an occurrence. It reports whether to log it, with the
// occurrences the line stands for, this one included.
func (l *Limiter) Tick() (n int, log bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	if !l.last.IsZero() && time.Since(l.last) < Interval {
		return 0, false
	}
	n, l.count, l.last = l.count, 0, time.Now()
	return n, true
}

// Reset ends the condition: its next occurrence is logged at once.
func (l *Limiter) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last, l.count = time.Time{}, 0
}
