package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/server"
)

const testAdminToken = "0123456789abcdef0123456789abcdef"

// testServer is a real server on 127.0.0.1:0 over the test ledger.
type testServer struct {
	*server.Server
	ledger server.Ledger
	url    string
	clock  *testClock
	logs   *lockedBuffer
}

// testClock is a settable clock safe to read from handlers.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestServer(t *testing.T, configure ...func(*server.Server)) *testServer {
	t.Helper()
	key, _, err := server.LoadOrCreateKey(filepath.Join(t.TempDir(), "cloud.key"))
	if err != nil {
		t.Fatal(err)
	}
	ledger := openTestLedger(t)
	s := server.New(ledger, openTestCodec(t), key, "test-program")
	s.Addr = "127.0.0.1:0"
	s.AdminToken = []byte(testAdminToken)
	clock := &testClock{}
	clock.ns.Store(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixNano())
	s.Now = clock.Now
	logs := &lockedBuffer{}
	s.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, f := range configure {
		f(s)
	}
	if err := s.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testServer{Server: s, ledger: ledger, url: s.URL(), clock: clock, logs: logs}
}

// do sends a request and returns the status and body.
func do(t *testing.T, method, url, contentType, auth string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// wantProblem checks that a response is the problem document for code.
func wantProblem(t *testing.T, status int, h http.Header, body []byte, wantStatus int, wantCode string) server.Problem {
	t.Helper()
	var p server.Problem
	if ct := h.Get("Content-Type"); ct != server.ProblemContentType {
		t.Fatalf("content type %q, want %q (body %s)", ct, server.ProblemContentType, body)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if status != wantStatus || p.Code != wantCode || p.Status != wantStatus {
		t.Fatalf("got %d %s (status member %d), want %d %s; detail %q", status, p.Code, p.Status, wantStatus, wantCode, p.Detail)
	}
	return p
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenRefusesIncompleteSettings(t *testing.T) {
	key, _, _ := server.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"))
	cases := map[string]func(*server.Server){
		"no key":            func(s *server.Server) { s.Key = nil },
		"no program":        func(s *server.Server) { s.Program = "" },
		"tls cert only":     func(s *server.Server) { s.TLSCertFile = "cert.pem" },
		"short admin token": func(s *server.Server) { s.AdminToken = []byte("short") },
		"no ledger":         func(s *server.Server) { s.Ledger = nil },
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			s := server.New(openTestLedger(t), openTestCodec(t), key, "p")
			s.Addr = "127.0.0.1:0"
			breakIt(s)
			if err := s.Open(); err == nil {
				_ = s.Close(context.Background())
				t.Fatalf("Open succeeded, want a settings error")
			}
		})
	}
}

func TestUnknownRouteIsAProblem(t *testing.T) {
	ts := newTestServer(t)
	status, h, body := do(t, "GET", ts.url+"/v2/nothing", "", "", nil)
	wantProblem(t, status, h, body, http.StatusNotFound, server.CodeNotFound)
}

func TestAdminAPINeedsTheToken(t *testing.T) {
	ts := newTestServer(t)
	req := mustJSON(t, server.EnrollCodeRequest{Store: "S1", Terminal: "T1"})
	for name, auth := range map[string]string{
		"none":         "",
		"wrong":        "Bearer " + strings.Repeat("x", len(testAdminToken)),
		"prefix":       "Bearer " + testAdminToken[:10],
		"other scheme": "Basic " + testAdminToken,
	} {
		t.Run(name, func(t *testing.T) {
			status, h, body := do(t, "POST", ts.url+"/v1/admin/enroll-codes", "application/json", auth, req)
			wantProblem(t, status, h, body, http.StatusUnauthorized, server.CodeUnauthorized)
			if h.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	status, _, body := do(t, "POST", ts.url+"/v1/admin/enroll-codes", "application/json", "Bearer "+testAdminToken, req)
	if status != http.StatusCreated {
		t.Fatalf("with the right token: %d %s, want 201", status, body)
	}
}

func TestAdminAPIDisabledWithoutAToken(t *testing.T) {
	ts := newTestServer(t, func(s *server.Server) { s.AdminToken = nil })
	status, h, body := do(t, "POST", ts.url+"/v1/admin/terminals/T1/revoke", "", "Bearer anything", nil)
	wantProblem(t, status, h, body, http.StatusForbidden, server.CodeAdminDisabled)
}

// enrollBody is a valid enrollment request for code with a fresh key.
func enrollBody(t *testing.T, code string) ([]byte, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return mustJSON(t, server.EnrollRequest{Code: code, PublicKey: pub, Proof: ed25519.Sign(priv, server.EnrollProofMessage(code, pub))}), priv
}

func createCode(t *testing.T, ts *testServer, store, terminal string, ttl int64) string {
	t.Helper()
	status, _, body := do(t, "POST", ts.url+"/v1/admin/enroll-codes", "application/json", "Bearer "+testAdminToken,
		mustJSON(t, server.EnrollCodeRequest{Store: store, Terminal: terminal, TTLSeconds: ttl}))
	if status != http.StatusCreated {
		t.Fatalf("create code: %d %s", status, body)
	}
	var r server.EnrollCodeResponse
	if err := json.Unmarshal(body, &r); err != nil || r.Code == "" {
		t.Fatalf("create code reply %s: %v", body, err)
	}
	return r.Code
}

func TestEnrollCodeWorksOnce(t *testing.T) {
	ts := newTestServer(t)
	code := createCode(t, ts, "S1", "T1", 0)
	body, priv := enrollBody(t, code)
	status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body)
	if status != http.StatusCreated {
		t.Fatalf("enroll: %d %s, want 201", status, reply)
	}
	var r server.EnrollResponse
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	if r.Store != "S1" || r.Terminal != "T1" || r.Program != "test-program" || r.TerminalKeyID != server.KeyID(pub) {
		t.Errorf("enroll reply %+v, want store S1 terminal T1 program test-program key %s", r, server.KeyID(pub))
	}
	if !ed25519.PublicKey(r.CloudPublicKey).Equal(ts.Key.Public()) {
		t.Errorf("enroll reply carries a cloud key that is not the server's")
	}
	tm, err := ts.ledger.Terminal(context.Background(), "T1")
	if err != nil || !tm.PublicKey.Equal(pub) {
		t.Fatalf("registered terminal %+v (err %v), want T1 with the enrolled key", tm, err)
	}

	again, _ := enrollBody(t, code)
	status, h, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", again)
	wantProblem(t, status, h, reply, http.StatusGone, server.CodeEnrollCodeUsed)
	tm, err = ts.ledger.Terminal(context.Background(), "T1")
	if err != nil || !tm.PublicKey.Equal(pub) {
		t.Errorf("a second use of the code changed the terminal's key")
	}
}

func TestEnrollRefusesBadRequests(t *testing.T) {
	ts := newTestServer(t)
	code := createCode(t, ts, "S1", "T1", 0)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name        string
		contentType string
		body        []byte
		status      int
		code        string
	}{
		{"unknown code", "application/json", func() []byte { b, _ := enrollBody(t, "NO-SUCH-CODE"); return b }(), http.StatusForbidden, server.CodeEnrollCodeBad},
		{"proof by another key", "application/json", mustJSON(t, server.EnrollRequest{Code: code, PublicKey: pub, Proof: ed25519.Sign(other, server.EnrollProofMessage(code, pub))}), http.StatusForbidden, server.CodeBadSignature},
		{"short key", "application/json", mustJSON(t, server.EnrollRequest{Code: code, PublicKey: pub[:16], Proof: ed25519.Sign(priv, server.EnrollProofMessage(code, pub))}), http.StatusBadRequest, server.CodeInvalidRequest},
		{"unknown field", "application/json", []byte(`{"code":"x","public_key":"","proof":"","admin":true}`), http.StatusBadRequest, server.CodeInvalidRequest},
		{"trailing data", "application/json", append(mustJSON(t, server.EnrollRequest{Code: code}), []byte(`{}`)...), http.StatusBadRequest, server.CodeInvalidRequest},
		{"not json", "text/plain", []byte("hello"), http.StatusUnsupportedMediaType, server.CodeUnsupportedMedia},
		{"oversized", "application/json", append([]byte(`{"code":"`), bytes.Repeat([]byte("A"), server.DefaultMaxJSONBytes+10)...), http.StatusRequestEntityTooLarge, server.CodeBodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, h, body := do(t, "POST", ts.url+"/v1/enroll", c.contentType, "", c.body)
			wantProblem(t, status, h, body, c.status, c.code)
		})
	}
	// The code survived every bad attempt.
	body, _ := enrollBody(t, code)
	if status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body); status != http.StatusCreated {
		t.Fatalf("the code no longer works after refused attempts: %d %s", status, reply)
	}
}

func TestRevokeThroughTheAdminAPI(t *testing.T) {
	ts := newTestServer(t)
	code := createCode(t, ts, "S1", "T1", 0)
	body, _ := enrollBody(t, code)
	if status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body); status != http.StatusCreated {
		t.Fatalf("enroll: %d %s", status, reply)
	}
	status, _, reply := do(t, "POST", ts.url+"/v1/admin/terminals/T1/revoke", "", "Bearer "+testAdminToken, nil)
	if status != http.StatusOK {
		t.Fatalf("revoke: %d %s, want 200", status, reply)
	}
	tm, err := ts.ledger.Terminal(context.Background(), "T1")
	if err != nil || !tm.Revoked {
		t.Fatalf("terminal after revoke: %+v (err %v), want revoked", tm, err)
	}
	status, h, reply := do(t, "POST", ts.url+"/v1/admin/terminals/NOPE/revoke", "", "Bearer "+testAdminToken, nil)
	wantProblem(t, status, h, reply, http.StatusNotFound, server.CodeNotFound)
}

func TestEnrollCodeExpires(t *testing.T) {
	ts := newTestServer(t)
	code := createCode(t, ts, "S1", "T1", 60)
	ts.clock.Advance(61 * time.Second)
	body, _ := enrollBody(t, code)
	status, h, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body)
	wantProblem(t, status, h, reply, http.StatusGone, server.CodeEnrollCodeExpire)
	if _, err := ts.ledger.Terminal(context.Background(), "T1"); err == nil {
		t.Errorf("an expired code registered the terminal")
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	ts := newTestServer(t)
	code := createCode(t, ts, "S1", "T1", 0)
	body, _ := enrollBody(t, code)
	if status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body); status != http.StatusCreated {
		t.Fatalf("enroll: %d %s", status, reply)
	}
	do(t, "POST", ts.url+"/v1/admin/enroll-codes", "application/json", "Bearer wrong-"+testAdminToken, nil)
	logs := ts.logs.String()
	if !strings.Contains(logs, `"path":"/v1/enroll"`) {
		t.Fatalf("no request line for /v1/enroll in the log:\n%s", logs)
	}
	for name, secret := range map[string]string{"enrollment code": code, "admin token": testAdminToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the %s:\n%s", name, logs)
		}
	}
}
