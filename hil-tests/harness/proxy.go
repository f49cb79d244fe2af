package harness

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Mode is what a Proxy does to the traffic through it.
type Mode int

// The proxy's modes.
const (
	// Pass forwards both ways.
	Pass Mode = iota
	// Cut is the network down: open connections are reset and new ones
	// are reset as soon as they are accepted.
	Cut
	// Slow forwards both ways, each chunk held back by the proxy's Delay.
	Slow
	// DropResponses forwards requests to the cloud but never lets a byte
	// of the answer through: the connection is reset when the answer
	// starts. The cloud did the work; the terminal does not know.
	DropResponses
)

func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Cut:
		return "cut"
	case Slow:
		return "slow"
	case DropResponses:
		return "drop-responses"
	}
	return "unknown"
}

// Proxy is a fault-injecting TCP proxy on 127.0.0.1 in front of one
// upstream address (the cloud).
type Proxy struct {
	Addr string // 127.0.0.1:PORT
	URL  string // http://Addr

	upstream string
	ln       net.Listener
	wg       sync.WaitGroup

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	conns   map[net.Conn]struct{}
	dropped int // answers dropped in DropResponses
	delayed int // chunks held back in Slow
	accepts int
	closed  bool
}

// NewProxy listens on a free port and forwards to upstream until the test
// ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), upstream: upstream, ln: ln, conns: map[net.Conn]struct{}{}}
	p.URL = "http://" + p.Addr
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// SetMode switches the proxy; Cut also resets every open connection.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	p.mode = m
	var reset []net.Conn
	if m == Cut {
		for c := range p.conns {
			reset = append(reset, c)
		}
	}
	p.mu.Unlock()
	for _, c := range reset {
		abort(c)
	}
}

// Cut takes the network down.
func (p *Proxy) Cut() { p.SetMode(Cut) }

// Restore brings the network back.
func (p *Proxy) Restore() { p.SetMode(Pass) }

// SlowBy makes every chunk wait d each way.
func (p *Proxy) SlowBy(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
	p.SetMode(Slow)
}

// DropResponses lets requests through and loses their answers.
func (p *Proxy) DropResponses() { p.SetMode(DropResponses) }

// Dropped is how many answers DropResponses lost.
func (p *Proxy) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// Delayed is how many chunks Slow held back, either way.
func (p *Proxy) Delayed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delayed
}

// Accepts is how many connections the proxy accepted.
func (p *Proxy) Accepts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

// Close stops the proxy and resets every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var open []net.Conn
	for c := range p.conns {
		open = append(open, c)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range open {
		abort(c)
	}
	p.wg.Wait()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepts++
		mode := p.mode
		p.mu.Unlock()
		if mode == Cut {
			abort(c)
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// track registers c; it reports false when the proxy is closed or cut.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == Cut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		abort(client)
		return
	}
	if !p.track(client) || !p.track(up) {
		abort(client)
		abort(up)
		p.untrack(client, up)
		return
	}
	defer p.untrack(client, up)
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, client, false); done <- struct{}{} }()
	go func() { p.pipe(client, up, true); done <- struct{}{} }()
	<-done
	abort(client)
	abort(up)
	<-done
}

// pipe copies src to dst chunk by chunk, applying the mode current at
// each chunk; answer says the chunk goes from the cloud to the terminal.
func (p *Proxy) pipe(dst, src net.Conn, answer bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			mode, delay := p.mode, p.delay
			switch {
			case mode == DropResponses && answer:
				p.dropped++
			case mode == Slow:
				p.delayed++
			}
			p.mu.Unlock()
			switch {
			case mode == Cut:
				return
			case mode == DropResponses && answer:
				return // handle resets both sides
			case mode == Slow:
				time.Sleep(delay)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// abort closes c with a reset rather than an orderly FIN, as a dead
// network or a crashed middlebox looks to the terminal.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
