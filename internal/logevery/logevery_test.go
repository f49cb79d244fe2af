package logevery

import (
	"testing"
	"time"
)

// TestFirstLoggedThenHeldBackWithTheirCount: the first occurrence of a
// condition is logged at once; the next ones within Interval are held
// back, and the next line stands for every one of them.
func TestFirstLoggedThenHeldBackWithTheirCount(t *testing.T) {
	var l Limiter
	if n, log := l.Tick(); !log || n != 1 {
		t.Fatalf("first occurrence: log %v, n %d; want logged, standing for 1", log, n)
	}
	for range 3 {
		if _, log := l.Tick(); log {
			t.Fatal("an occurrence within Interval of the last line was let through")
		}
	}
	l.last = time.Now().Add(-Interval) // as if Interval had passed
	if n, log := l.Tick(); !log || n != 4 {
		t.Fatalf("after Interval: log %v, n %d; want logged, standing for the 3 held back and this one", log, n)
	}
	l.Tick()
	l.Reset()
	if n, log := l.Tick(); !log || n != 1 {
		t.Fatalf("after Reset: log %v, n %d; want logged at once, standing for 1", log, n)
	}
}
