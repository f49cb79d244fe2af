package uplink_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fault is one thing the network can do to an exchange.
type fault int

const (
	pass         fault = iota
	dropRequest        // the request never reaches the cloud
	dropResponse       // the cloud applies, the answer is lost
	duplicate          // the request reaches the cloud twice
	delay              // the exchange is slow
	reorder            // the request is held and reaches the cloud later, after newer ones
	truncate           // the answer is cut in the middle
	status500          // the cloud applies, a proxy answers 500
	status503          // a proxy answers 503 without forwarding
	nFaults
)

func (f fault) String() string {
	return [...]string{"pass", "drop-request", "drop-response", "duplicate", "delay", "reorder", "truncate", "500", "503"}[f]
}

// faultProxy sits between uplinks and a cloud on 127.0.0.1 and breaks
// exchanges at random, from a seed: each request suffers one fault with
// probability rate, the fault drawn uniformly. Heal turns it into a plain
// proxy. Counts says what it did.
type faultProxy struct {
	t      testing.TB
	target string
	client *http.Client

	mu     sync.Mutex
	rng    *rand.Rand
	rate   float64
	healed bool
	held   []heldRequest
	counts [nFaults]int
}

type heldRequest struct {
	path, ctype string
	body        []byte
}

func newFaultProxy(t testing.TB, target string, seed uint64, rate float64) *faultProxy {
	return &faultProxy{
		t: t, target: strings.TrimSuffix(target, "/"), rate: rate,
		rng:    rand.New(rand.NewPCG(seed, seed^0x5eed)),
		client: &http.Client{Timeout: 10 * time.Second},
	}
}

// Heal stops injecting faults and delivers the requests still held.
func (p *faultProxy) Heal() {
	p.mu.Lock()
	p.healed = true
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, h := range held {
		p.forward(h)
	}
}

func (p *faultProxy) Counts() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for f := pass; f < nFaults; f++ {
		parts = append(parts, fmt.Sprintf("%s=%d", f, p.counts[f]))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// Faults returns how many exchanges the proxy has broken so far.
func (p *faultProxy) Faults() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for f := pass + 1; f < nFaults; f++ {
		n += p.counts[f]
	}
	return n
}

func (p *faultProxy) draw() (fault, time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.healed {
		p.counts[pass]++
		return pass, 0, true
	}
	f := pass
	if p.rng.Float64() < p.rate {
		f = fault(1 + p.rng.IntN(int(nFaults)-1))
	}
	p.counts[f]++
	return f, time.Duration(p.rng.IntN(20)) * time.Millisecond, p.rng.IntN(2) == 0
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	req := heldRequest{path: r.URL.RequestURI(), ctype: r.Header.Get("Content-Type"), body: body}
	f, d, coin := p.draw()
	switch f {
	case dropRequest:
		p.cut(w)
		return
	case reorder:
		p.mu.Lock()
		p.held = append(p.held, req)
		p.mu.Unlock()
		p.cut(w)
		return
	case status503:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "proxy: service unavailable", http.StatusServiceUnavailable)
		return
	case delay:
		time.Sleep(d)
	case duplicate:
		p.forward(req)
	}
	status, header, answer := p.forward(req)
	// A held request overtaken by this one reaches the cloud now, late.
	if coin && f == pass {
		p.mu.Lock()
		var late []heldRequest
		if len(p.held) > 0 {
			late, p.held = p.held[:1], p.held[1:]
		}
		p.mu.Unlock()
		for _, h := range late {
			p.forward(h)
		}
	}
	switch f {
	case dropResponse:
		p.cut(w)
		return
	case status500:
		http.Error(w, "proxy: internal error", http.StatusInternalServerError)
		return
	case truncate:
		if len(answer) > 1 {
			w.Header().Set("Content-Type", header.Get("Content-Type"))
			w.Header().Set("Content-Length", fmt.Sprint(len(answer)))
			w.WriteHeader(status)
			w.Write(answer[:len(answer)/2])
			p.cut(w)
			return
		}
	}
	if status == 0 {
		p.cut(w)
		return
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	w.Write(answer)
}

// forward sends req to the cloud; status 0 when the cloud did not answer.
func (p *faultProxy) forward(req heldRequest) (int, http.Header, []byte) {
	r, err := http.NewRequest(http.MethodPost, p.target+req.path, bytes.NewReader(req.body))
	if err != nil {
		return 0, nil, nil
	}
	r.Header.Set("Content-Type", req.ctype)
	resp, err := p.client.Do(r)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil
	}
	return resp.StatusCode, resp.Header.Clone(), b
}

// cut closes the client's connection without an answer.
func (p *faultProxy) cut(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fault proxy: the ResponseWriter cannot hijack")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}
