package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// AgentConfig is what a test chooses of an agent's config file; the rest
// keeps the agent's defaults.
type AgentConfig struct {
	Terminal *Terminal
	CloudURL string // usually a Proxy's URL; empty: no cloud
	// Scanner is a serial port path (a ptypair end); empty: none.
	Scanner string
	// Printer is a serial port path or tcp://HOST:PORT; empty: none.
	Printer string
	// NFCReader is a substring of the PC/SC reader name; empty: none.
	NFCReader string
	// RedeemCap is offline.redeem_cap_per_day; 0 keeps the default.
	RedeemCap int
	// Extra is TOML appended to the file as is (tables last).
	Extra string
}

// toml renders the config file.
func (c AgentConfig) toml() string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "listen = %s\nstate_dir = %s\nstore = %s\nterminal = %s\nshutdown_timeout = \"5s\"\n",
		q("127.0.0.1:0"), q(c.Terminal.StateDir), q(c.Terminal.Store), q(c.Terminal.ID))
	fmt.Fprintf(&b, "\n[log]\nlevel = \"debug\"\nformat = \"text\"\n")
	if c.CloudURL != "" {
		fmt.Fprintf(&b, "\n[cloud]\nurl = %s\ntimeout = \"2s\"\n", q(c.CloudURL))
	}
	if c.RedeemCap > 0 {
		fmt.Fprintf(&b, "\n[offline]\nredeem_cap_per_day = %d\n", c.RedeemCap)
	}
	if c.Printer != "" {
		fmt.Fprintf(&b, "\n[printer]\npath = %s\nwidth = 42\ncode_page = \"cp858\"\n", q(c.Printer))
	}
	if c.Scanner != "" {
		fmt.Fprintf(&b, "\n[[scanner]]\nname = \"counter\"\nkind = \"serial\"\npath = %s\nsuffix = \"CR\"\nbaud = 9600\n", q(c.Scanner))
	}
	if c.NFCReader != "" {
		fmt.Fprintf(&b, "\n[[nfc]]\nname = \"counter\"\nreader = %s\n", q(c.NFCReader))
	}
	if c.Extra != "" {
		b.WriteString("\n" + c.Extra + "\n")
	}
	return b.String()
}

// Agent is a running 'tillpoint agent'.
type Agent struct {
	Config     AgentConfig
	ConfigPath string
	URL        string // http://127.0.0.1:PORT of the local API
	Proc       *Proc

	t    testing.TB
	runs int
}

// StartAgent writes the config file and starts the agent.
func StartAgent(t testing.TB, cfg AgentConfig) *Agent {
	t.Helper()
	a := &Agent{Config: cfg, t: t, ConfigPath: filepath.Join(cfg.Terminal.StateDir, "agent.toml")}
	if err := os.WriteFile(a.ConfigPath, []byte(cfg.toml()), 0o600); err != nil {
		t.Fatalf("harness: write agent config: %v", err)
	}
	a.Restart(t)
	return a
}

// Restart starts the agent again (after Kill or Stop) with the same config
// and state directory; the API may get a new port.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.runs++
	name := "agent " + a.Config.Terminal.ID
	if a.runs > 1 {
		name += fmt.Sprintf(" (run %d)", a.runs)
	}
	a.Proc = Start(t, name, nil, "agent", "--config", a.ConfigPath)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rest, err := a.Proc.WaitOutput(ctx, "tillpoint agent: serving on ")
	if err != nil {
		t.Fatalf("harness: start agent: %v", err)
	}
	a.URL, _, _ = strings.Cut(rest, " ")
}

// Problem is an RFC 9457 problem document from the agent.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// Reply is an API answer: the status, the body, and the problem when the
// status is not 2xx.
type Reply struct {
	Status  int
	Body    []byte
	Problem *Problem
}

// Decode decodes the body into v.
func (r *Reply) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode %s: %w", r.Body, err)
	}
	return nil
}

func (r *Reply) String() string { return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body)) }

// Do sends a request to the local API; key is the Idempotency-Key of a POST.
func (a *Agent) Do(ctx context.Context, method, path, key string, body any) (*Reply, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read reply: %w", method, path, err)
	}
	r := &Reply{Status: resp.StatusCode, Body: b}
	if resp.StatusCode >= 300 {
		var p Problem
		if json.Unmarshal(b, &p) == nil {
			r.Problem = &p
		}
	}
	return r, nil
}

// Status is GET /v1/status, decoded loosely (the agent's own types stay
// free to grow).
type Status struct {
	Version  string `json:"version"`
	Terminal string `json:"terminal"`
	Store    string `json:"store"`
	Rules    uint32 `json:"rules_version"`
	Devices  []struct {
		Device string `json:"device"`
		Kind   string `json:"kind"`
		State  string `json:"state"`
		Code   string `json:"code"`
		Reason string `json:"reason"`
	} `json:"devices"`
	Sync struct {
		Online     bool   `json:"online"`
		BacklogOps int    `json:"backlog_ops"`
		LastError  string `json:"last_error"`
	} `json:"sync"`
}

// Status reads GET /v1/status.
func (a *Agent) Status(ctx context.Context) (*Status, error) {
	r, err := a.Do(ctx, http.MethodGet, "/v1/status", "", nil)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/status: %s", r)
	}
	var s Status
	return &s, r.Decode(&s)
}
