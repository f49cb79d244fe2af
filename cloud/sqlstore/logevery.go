package sqlstore

import (
	"sync"
	"time"
)

// reportEvery spaces the log lines of a condition that, while it lasts,
// would otherwise be logged many times a second: conflicting
// transactions, a failing checkpointer, a full disk.
const reportEvery = time.Minute

// logEvery lets the first occurrence of such a condition be logged, then
// at most one every reportEvery, and counts the occurrences in between
// for the line that is logged. Safe for concurrent use; the zero value is
// ready.
type logEvery struct {
	mu    sync.Mutex
	last  time.Time // when a line was last let through
	count int       // occurrences since
}

// tick counts an occurrence. It reports whether to log it, with the
// occurrences the line stands for, this one included.
func (l *logEvery) tick() (n int, log bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	if !l.last.IsZero() && time.Since(l.last) < reportEvery {
		return 0, false
	}
	n, l.count, l.last = l.count, 0, time.Now()
	return n, true
}

// reset ends the condition: its next occurrence is logged at once.
func (l *logEvery) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last, l.count = time.Time{}, 0
}
