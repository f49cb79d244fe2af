package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// TestConcurrentWritersLoseNothing: lines written by many goroutines at
// once, while another reads, all arrive whole (run with -race).
func TestConcurrentWritersLoseNothing(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("line\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "line\n"); n != 800 || len(b.Bytes()) != 800*5 {
		t.Errorf("%d whole lines, %d bytes; want 800 and 4000", n, len(b.Bytes()))
	}
}
