package devicestest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// IO is one exchange: what the driver writes, then what the device answers.
// An IO with no W is the device speaking first (a scan).
type IO struct {
	W []byte
	R []byte
}

// ErrClosed is returned by a closed Playback.
var ErrClosed = errors.New("devicestest: closed")

// Playback plays a transcript back: each Write must match the next
// expected W, after which its R can be read. Close reports an error when
// exchanges were left over or a write did not match. Reads past the end of
// the transcript wait for the read timeout, or for Close.
type Playback struct {
	Ops []IO

	mu           sync.Mutex
	pos          int    // next op
	wpos         int    // bytes of Ops[pos].W already written
	rbuf         []byte // answer being read
	err          error  // first mismatch
	closed       bool
	closedCh     chan struct{}
	readTimeout  time.Duration
	changed      chan struct{}
	deadlineMode bool
}

func (p *Playback) init() {
	if p.closedCh == nil {
		p.closedCh = make(chan struct{})
		p.changed = make(chan struct{})
		p.readTimeout = -1
	}
}

// Write checks p against the transcript.
func (p *Playback) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	if p.closed {
		return 0, ErrClosed
	}
	if p.err != nil {
		return 0, p.err
	}
	for n := 0; n < len(b); {
		if p.pos >= len(p.Ops) {
			p.err = fmt.Errorf("devicestest: unexpected write % x after the end of the transcript", b[n:])
			return n, p.err
		}
		want := p.Ops[p.pos].W[p.wpos:]
		if len(want) == 0 {
			p.err = fmt.Errorf("devicestest: unexpected write % x at exchange %d (the device was to speak first)", b[n:], p.pos)
			return n, p.err
		}
		k := min(len(want), len(b)-n)
		if !bytes.Equal(want[:k], b[n:n+k]) {
			p.err = fmt.Errorf("devicestest: exchange %d: got write % x, want % x", p.pos, b[n:n+k], want[:k])
			return n, p.err
		}
		n += k
		p.wpos += k
		if p.wpos == len(p.Ops[p.pos].W) {
			p.rbuf = append(p.rbuf, p.Ops[p.pos].R...)
			p.pos++
			p.wpos = 0
			p.notify()
		}
	}
	return len(b), nil
}

func (p *Playback) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Read returns the device's answer to the last write, or the next
// unsolicited bytes of the transcript.
func (p *Playback) Read(b []byte) (int, error) {
	p.mu.Lock()
	p.init()
	var deadline <-chan time.Time
	if p.readTimeout >= 0 {
		t := time.NewTimer(p.readTimeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		if p.closed {
			p.mu.Unlock()
			return 0, ErrClosed
		}
		if len(p.rbuf) == 0 && p.pos < len(p.Ops) && len(p.Ops[p.pos].W) == 0 {
			p.rbuf = append(p.rbuf, p.Ops[p.pos].R...)
			p.pos++
		}
		if len(p.rbuf) > 0 {
			n := copy(b, p.rbuf)
			p.rbuf = p.rbuf[n:]
			p.mu.Unlock()
			return n, nil
		}
		changed, closed := p.changed, p.closedCh
		p.mu.Unlock()
		select {
		case <-changed:
		case <-closed:
		case <-deadline:
			p.mu.Lock()
			dm := p.deadlineMode
			p.mu.Unlock()
			if dm {
				return 0, os.ErrDeadlineExceeded
			}
			return 0, nil
		}
		p.mu.Lock()
	}
}

// SetReadTimeout makes reads with nothing to return give (0, nil) after t,
// as go.bug.st/serial does; a negative t waits for ever.
func (p *Playback) SetReadTimeout(t time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	p.readTimeout = t
	return nil
}

// SetReadDeadline is SetReadTimeout until t, for drivers that use
// deadlines; a read that times out returns os.ErrDeadlineExceeded then
// instead of (0, nil). The zero time waits for ever.
func (p *Playback) SetReadDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	p.deadlineMode = true
	if t.IsZero() {
		p.readTimeout = -1
	} else {
		p.readTimeout = max(time.Until(t), 0)
	}
	return nil
}

// SetWriteDeadline does nothing: playback writes never block.
func (p *Playback) SetWriteDeadline(time.Time) error { return nil }

// Close ends the playback. It reports a mismatched write, and exchanges
// the driver never made.
func (p *Playback) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	if !p.closed {
		p.closed = true
		close(p.closedCh)
	}
	if p.err != nil {
		return p.err
	}
	if p.pos < len(p.Ops) {
		return fmt.Errorf("devicestest: %d of %d exchanges not made; next: write % x, answer % x",
			len(p.Ops)-p.pos, len(p.Ops), p.Ops[p.pos].W, p.Ops[p.pos].R)
	}
	if len(p.rbuf) > 0 {
		return fmt.Errorf("devicestest: answer % x never read", p.rbuf)
	}
	return nil
}

// Done reports whether every exchange was made.
func (p *Playback) Done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos == len(p.Ops) && len(p.rbuf) == 0
}

// Record wraps a real connection and keeps the transcript of what went
// through it, for replay with Playback.
type Record struct {
	Conn io.ReadWriter

	mu  sync.Mutex
	ops []IO
}

// Write writes to Conn and starts a new exchange (or extends the current
// one when nothing was read since the last write).
func (r *Record) Write(b []byte) (int, error) {
	n, err := r.Conn.Write(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	if k := len(r.ops); k > 0 && len(r.ops[k-1].R) == 0 && len(r.ops[k-1].W) > 0 {
		r.ops[k-1].W = append(r.ops[k-1].W, b[:n]...)
	} else {
		r.ops = append(r.ops, IO{W: append([]byte(nil), b[:n]...)})
	}
	return n, err
}

// Read reads from Conn and adds what it got to the current exchange's answer.
func (r *Record) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if n > 0 {
		r.mu.Lock()
		if len(r.ops) == 0 {
			r.ops = append(r.ops, IO{})
		}
		r.ops[len(r.ops)-1].R = append(r.ops[len(r.ops)-1].R, b[:n]...)
		r.mu.Unlock()
	}
	return n, err
}

// Ops returns the transcript so far.
func (r *Record) Ops() []IO {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]IO, len(r.ops))
	copy(out, r.ops)
	return out
}
