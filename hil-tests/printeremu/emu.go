package printeremu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Printer is the emulated printer's state.
type Printer struct {
	mu        sync.Mutex
	changed   chan struct{}
	paperOut  bool
	nearEnd   bool
	coverOpen bool
	silent    bool
	received  []byte   // every byte, as received
	printed   []byte   // data processed (printed) since the last job boundary
	jobs      [][]byte // printed data, split at each GS r (the end-of-job check)
	kicks     int      // ESC p
	pending   []byte   // data received but not processed (paper out)

	ln   net.Listener
	wg   sync.WaitGroup
	stop context.CancelFunc
}

// New returns a printer with paper, cover closed, answering status.
func New() *Printer { return &Printer{changed: make(chan struct{})} }

// ListenTCP serves the printer on addr (127.0.0.1:0 for a free port) until
// Close, one connection at a time like a real printer, and returns the
// address it listens on.
func (p *Printer) ListenTCP(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("printeremu: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.ln, p.stop = ln, cancel
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = p.Serve(ctx, c)
			_ = c.Close()
		}
	}()
	return ln.Addr().String(), nil
}

// Close stops listening and waits for the connection being served to end.
func (p *Printer) Close() error {
	p.mu.Lock()
	ln, stop := p.ln, p.stop
	p.mu.Unlock()
	if ln == nil {
		return nil
	}
	stop()
	err := ln.Close()
	p.wg.Wait()
	return err
}

// Serve speaks ESC/POS on rw until it fails or ctx ends (rw is closed
// then if it is an io.Closer).
func (p *Printer) Serve(ctx context.Context, rw io.ReadWriter) error {
	if c, ok := rw.(io.Closer); ok {
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
	}
	var (
		in  []byte // bytes not yet parsed
		buf = make([]byte, 4096)
		wmu sync.Mutex
	)
	write := func(b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		_, _ = rw.Write(b)
	}
	// While paper is out, a goroutine answers held GS r requests when
	// paper comes back.
	release := make(chan struct{}, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			p.mu.Lock()
			ch := p.changed
			p.mu.Unlock()
			select {
			case <-ch:
				select {
				case release <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	reads := make(chan []byte)
	errc := make(chan error, 1)
	go func() {
		for {
			n, err := rw.Read(buf)
			if n > 0 {
				b := append([]byte(nil), buf[:n]...)
				select {
				case reads <- b:
				case <-done:
					return
				}
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	for {
		select {
		case b := <-reads:
			p.mu.Lock()
			p.received = append(p.received, b...)
			p.notifyLocked()
			p.mu.Unlock()
			in = append(in, b...)
			in = p.parse(in, write)
		case <-release:
			for _, a := range p.process() {
				write(a)
			}
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// parse consumes complete commands from in, answers real-time status at
// once, queues the rest for processing, and returns what is left (an
// incomplete command).
func (p *Printer) parse(in []byte, write func([]byte)) []byte {
	for len(in) > 0 {
		n, kind, ok := commandLen(in)
		if !ok {
			return in // wait for more bytes
		}
		cmd := in[:n]
		in = in[n:]
		switch kind {
		case "dle-eot":
			p.mu.Lock()
			silent := p.silent
			st := p.realtimeLocked(cmd[2])
			p.mu.Unlock()
			if !silent && st >= 0 {
				write([]byte{byte(st)})
			}
			continue
		}
		p.mu.Lock()
		p.pending = append(p.pending, cmd...)
		p.mu.Unlock()
	}
	for _, a := range p.process() {
		write(a)
	}
	return in
}

// process prints pending data if there is paper, and returns the answers
// to the GS r requests it reached.
func (p *Printer) process() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	var answers [][]byte
	start := len(p.pending)
	for len(p.pending) > 0 && !p.paperOut && !p.coverOpen {
		n, kind, ok := commandLen(p.pending)
		if !ok {
			break
		}
		cmd := p.pending[:n]
		switch kind {
		case "gs-r":
			p.jobs = append(p.jobs, p.printed)
			p.printed = nil
			if !p.silent {
				answers = append(answers, []byte{p.gsrLocked(cmd[2])})
			}
		case "esc-p":
			p.kicks++
		default:
			p.printed = append(p.printed, cmd...)
		}
		p.pending = p.pending[n:]
	}
	if len(p.pending) != start {
		p.notifyLocked()
	}
	return answers
}

func (p *Printer) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// realtimeLocked is the DLE EOT n answer: fixed bits 0xx1xx10.
func (p *Printer) realtimeLocked(n byte) int {
	st := 0x12
	switch n {
	case 1: // printer status
		if p.paperOut || p.coverOpen {
			st |= 0x08 // offline
		}
	case 2: // offline cause
		if p.coverOpen {
			st |= 0x04
		}
		if p.paperOut {
			st |= 0x20 // printing stopped by paper end
		}
	case 3: // error cause
	case 4: // roll paper sensor
		if p.nearEnd {
			st |= 0x0c
		}
		if p.paperOut {
			st |= 0x60
		}
	default:
		return -1
	}
	return st
}

// gsrLocked is the GS r n answer: fixed bits 0xx0xxxx.
func (p *Printer) gsrLocked(n byte) byte {
	var st byte
	if n == 1 || n == 49 {
		if p.nearEnd {
			st |= 0x03
		}
		if p.paperOut {
			st |= 0x0c
		}
	}
	return st
}

// commandLen says how long the command at the start of b is, what kind it
// is, and whether it is complete.
func commandLen(b []byte) (int, string, bool) {
	need := func(n int, kind string) (int, string, bool) {
		if len(b) < n {
			return 0, kind, false
		}
		return n, kind, true
	}
	switch b[0] {
	case 0x10: // DLE
		if len(b) < 2 {
			return 0, "", false
		}
		if b[1] == 0x04 {
			return need(3, "dle-eot")
		}
		return 1, "data", true
	case 0x1b: // ESC
		if len(b) < 2 {
			return 0, "", false
		}
		switch b[1] {
		case 'p':
			return need(5, "esc-p")
		case '*': // ESC * m nL nH d1..dk (k = n or 3n)
			if len(b) < 5 {
				return 0, "", false
			}
			k := int(b[3]) | int(b[4])<<8
			if b[2] == 32 || b[2] == 33 {
				k *= 3
			}
			return need(5+k, "data")
		}
		return 2, "data", true
	case 0x1d: // GS
		if len(b) < 2 {
			return 0, "", false
		}
		switch b[1] {
		case 'r':
			return need(3, "gs-r")
		case '(': // GS ( fn pL pH ...
			if len(b) < 5 {
				return 0, "", false
			}
			return need(5+(int(b[3])|int(b[4])<<8), "data")
		case 'v': // GS v 0 m xL xH yL yH d...
			if len(b) < 8 {
				return 0, "", false
			}
			return need(8+(int(b[4])|int(b[5])<<8)*(int(b[6])|int(b[7])<<8), "data")
		}
		return 2, "data", true
	}
	// Plain data up to the next command byte.
	i := bytes.IndexAny(b, "\x10\x1b\x1d")
	if i < 0 {
		return len(b), "data", true
	}
	return i, "data", true
}

// SetPaperOut takes the paper out or puts it back.
func (p *Printer) SetPaperOut(out bool) { p.set(func() { p.paperOut = out }) }

// SetNearEnd sets the paper-near-end sensor.
func (p *Printer) SetNearEnd(near bool) { p.set(func() { p.nearEnd = near }) }

// SetCoverOpen opens or closes the cover.
func (p *Printer) SetCoverOpen(open bool) { p.set(func() { p.coverOpen = open }) }

// SetSilent makes the printer stop (or resume) answering status requests,
// as many cheap printers never answer.
func (p *Printer) SetSilent(silent bool) { p.set(func() { p.silent = silent }) }

func (p *Printer) set(f func()) {
	p.mu.Lock()
	f()
	p.notifyLocked()
	p.mu.Unlock()
}

// Received returns every byte received so far.
func (p *Printer) Received() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.received...)
}

// Jobs returns the printed data so far, one entry per job (a job ends at
// the GS r status request the driver sends after it).
func (p *Printer) Jobs() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]byte, len(p.jobs))
	for i, j := range p.jobs {
		out[i] = append([]byte(nil), j...)
	}
	return out
}

// Pending reports how many received bytes wait for paper.
func (p *Printer) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// Kicks returns how many cash-drawer kicks were processed.
func (p *Printer) Kicks() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kicks
}

// WaitFor waits until cond holds of the printer (checked on every change)
// or d passes, and reports whether it held.
func (p *Printer) WaitFor(d time.Duration, cond func(p *Printer) bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		if cond(p) {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return cond(p)
		}
	}
}
