package harness_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
)

// The proxy's faults are what the outage scenarios rest on: each is tried
// here against a real HTTP server on 127.0.0.1.
func TestProxyFaults(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "pong")
	}))
	defer srv.Close()
	p := harness.NewProxy(t, srv.Listener.Addr().String())
	client := &http.Client{Timeout: 5 * time.Second}
	get := func() (string, error) {
		resp, err := client.Get(p.URL + "/ping")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	if got, err := get(); err != nil || got != "pong" {
		t.Fatalf("pass: got %q, %v; want pong", got, err)
	}

	p.Cut()
	before := served.Load()
	if got, err := get(); err == nil {
		t.Fatalf("cut: got %q, want a connection error", got)
	}
	if n := served.Load() - before; n != 0 {
		t.Errorf("cut: the server saw %d requests, want 0", n)
	}

	p.DropResponses()
	before = served.Load()
	if got, err := get(); err == nil {
		t.Fatalf("drop responses: got %q, want a connection error", got)
	}
	if n := served.Load() - before; n != 1 {
		t.Errorf("drop responses: the server saw %d requests, want 1 (the request goes through, its answer is lost)", n)
	}
	if p.Dropped() == 0 {
		t.Errorf("drop responses: Dropped() = 0, want at least 1")
	}

	p.SlowBy(50 * time.Millisecond)
	if got, err := get(); err != nil || got != "pong" {
		t.Fatalf("slow: got %q, %v; want pong, later", got, err)
	}
	if p.Delayed() < 2 {
		t.Errorf("slow: Delayed() = %d, want at least 2 (the request and its answer)", p.Delayed())
	}

	p.Restore()
	if got, err := get(); err != nil || got != "pong" {
		t.Fatalf("restored: got %q, %v; want pong", got, err)
	}
}

// A cut resets connections that were open (kept alive) when it happened.
func TestProxyCutResetsOpenConnections(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "late")
	}))
	defer srv.Close()
	defer close(release)
	p := harness.NewProxy(t, srv.Listener.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/wait", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	harness.Eventually(t, 5*time.Second, "the request reaches the proxy", func() (bool, string) {
		return p.Accepts() == 1, "no connection yet"
	})
	p.Cut()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatalf("request in flight during a cut: got an answer, want a connection error")
		}
	case <-ctx.Done():
		t.Fatalf("request in flight during a cut: still waiting, want a connection error")
	}
}
