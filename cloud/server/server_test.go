package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/sync/batch"
)

func TestOpenRefusesIncompleteSettings(t *testing.T) {
	t.Parallel()
	key, _, _ := server.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"))
	cases := map[string]func(*server.Server){
		"no key":            func(s *server.Server) { s.Key = nil },
		"no program":        func(s *server.Server) { s.Program = "" },
		"tls cert only":     func(s *server.Server) { s.TLSCertFile = "cert.pem" },
		"short admin token": func(s *server.Server) { s.AdminToken = []byte("short") },
		"no ledger":         func(s *server.Server) { s.Ledger = nil },
		"batch cap too big": func(s *server.Server) { s.MaxBatchBytes = batch.MaxBatchBytes + 1 },
	}
	ledger := openTestLedger(t)
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			s := server.New(ledger, key, "p")
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
	t.Parallel()
	ts := newTestServer(t)
	status, h, body := do(t, "GET", ts.url+"/v2/nothing", "", "", nil)
	wantProblem(t, status, h, body, http.StatusNotFound, server.CodeNotFound)
}

func TestAdminAPINeedsTheToken(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	ts := newTestServer(t, func(s *server.Server) { s.AdminToken = nil })
	status, h, body := do(t, "POST", ts.url+"/v1/admin/terminals/T1/revoke", "", "Bearer anything", nil)
	wantProblem(t, status, h, body, http.StatusForbidden, server.CodeAdminDisabled)
}

func TestEnrollCodeWorksOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	code := createCode(t, ts, "S1", "T1", 0)
	body, priv := enrollBody(t, code)
	status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body)
	if status != http.StatusCreated {
		t.Fatalf("enroll: %d %s, want 201", status, reply)
	}
	var r batch.EnrollResponse
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	if r.Store != "S1" || r.Terminal != "T1" || r.Program != testProgram || r.TerminalKeyID != batch.Fingerprint(pub) {
		t.Errorf("enroll reply %+v, want store S1 terminal T1 program %s key %s", r, testProgram, batch.Fingerprint(pub))
	}
	if !ed25519.PublicKey(r.CloudPublicKey).Equal(ts.Key.Public()) || r.CloudKeyID != batch.Fingerprint(r.CloudPublicKey) {
		t.Errorf("enroll reply carries a cloud key that is not the server's")
	}
	tm, err := ts.ledger.Terminal(context.Background(), "T1")
	if err != nil || !tm.PublicKey.Equal(pub) || tm.Status != cloud.TerminalActive {
		t.Fatalf("registered terminal %+v (err %v), want T1 active with the enrolled key", tm, err)
	}

	again, _ := enrollBody(t, code)
	status, h, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", again)
	wantProblem(t, status, h, reply, http.StatusForbidden, server.CodeEnrollCodeBad)
	tm, err = ts.ledger.Terminal(context.Background(), "T1")
	if err != nil || !tm.PublicKey.Equal(pub) {
		t.Errorf("a second use of the code changed the terminal's key")
	}
}

func TestEnrollCodeExpires(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	code := createCode(t, ts, "S1", "T1", 60)
	ts.clock.Advance(61 * time.Second)
	body, _ := enrollBody(t, code)
	status, h, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body)
	wantProblem(t, status, h, reply, http.StatusForbidden, server.CodeEnrollCodeBad)
	if _, err := ts.ledger.Terminal(context.Background(), "T1"); err == nil {
		t.Errorf("an expired code registered the terminal")
	}
}

func TestEnrollAcceptsACodeTypedSloppily(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	code := createCode(t, ts, "S1", "T1", 0)
	typed := " " + strings.ToLower(code) + "\n"
	body, _ := enrollBody(t, typed)
	if status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body); status != http.StatusCreated {
		t.Fatalf("enroll with %q for %q: %d %s, want 201", typed, code, status, reply)
	}
}

func TestEnrollRefusesBadRequests(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	code := createCode(t, ts, "S1", "T1", 0)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	unknown, _ := enrollBody(t, "NO-SUCH-CODE")
	// The identity point, under which this signature verifies for every
	// message: enrolled, it would let anyone sign as the terminal.
	smallOrder := make(ed25519.PublicKey, 32)
	smallOrder[0] = 1
	universal, _ := hex.DecodeString("5866666666666666666666666666666666666666666666666666666666666666" +
		"0100000000000000000000000000000000000000000000000000000000000000")
	if !ed25519.Verify(smallOrder, batch.EnrollProofMessage(code, smallOrder), universal) {
		t.Fatal("the universal signature does not verify under the identity point: the case below is void")
	}
	cases := []struct {
		name        string
		contentType string
		body        []byte
		status      int
		code        string
	}{
		{"unknown code", "application/json", unknown, http.StatusForbidden, server.CodeEnrollCodeBad},
		{"proof by another key", "application/json", mustJSON(t, batch.EnrollRequest{Code: code, PublicKey: pub, Proof: ed25519.Sign(other, batch.EnrollProofMessage(code, pub))}), http.StatusForbidden, server.CodeBadSignature},
		{"short key", "application/json", mustJSON(t, batch.EnrollRequest{Code: code, PublicKey: pub[:16], Proof: ed25519.Sign(priv, batch.EnrollProofMessage(code, pub))}), http.StatusBadRequest, server.CodeInvalidRequest},
		{"small-order signing key", "application/json", mustJSON(t, batch.EnrollRequest{Code: code, PublicKey: smallOrder, Proof: universal}), http.StatusBadRequest, server.CodeInvalidRequest},
		// A low-order X25519 box key: the roster sealed to it failed after the code was spent.
		{"low-order box key", "application/json", mustJSON(t, batch.EnrollRequest{Code: code, PublicKey: pub, Proof: ed25519.Sign(priv, batch.EnrollProofMessage(code, pub)), BoxKey: make([]byte, 32)}), http.StatusBadRequest, server.CodeInvalidRequest},
		{"unknown field", "application/json", []byte(`{"code":"x","public_key":"","proof":"","admin":true}`), http.StatusBadRequest, server.CodeInvalidRequest},
		{"trailing data", "application/json", append(mustJSON(t, batch.EnrollRequest{Code: code}), []byte(`{}`)...), http.StatusBadRequest, server.CodeInvalidRequest},
		{"not json", "text/plain", []byte("hello"), http.StatusUnsupportedMediaType, server.CodeUnsupportedMedia},
		{"oversized", "application/json", append([]byte(`{"code":"`), bytes.Repeat([]byte("A"), server.DefaultMaxJSONBytes+10)...), http.StatusRequestEntityTooLarge, server.CodeBodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, h, body := do(t, "POST", ts.url+"/v1/enroll", c.contentType, "", c.body)
			wantProblem(t, status, h, body, c.status, c.code)
		})
	}
	// The code survived every refused attempt.
	body, _ := enrollBody(t, code)
	if status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body); status != http.StatusCreated {
		t.Fatalf("the code no longer works after refused attempts: %d %s", status, reply)
	}
}

func TestRevokeThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	enroll(t, ts, "S1", "T1")
	status, _, reply := do(t, "POST", ts.url+"/v1/admin/terminals/T1/revoke", "", "Bearer "+testAdminToken, nil)
	if status != http.StatusOK {
		t.Fatalf("revoke: %d %s, want 200", status, reply)
	}
	tm, err := ts.ledger.Terminal(context.Background(), "T1")
	if err != nil || tm.Status != cloud.TerminalRevoked {
		t.Fatalf("terminal after revoke: %+v (err %v), want revoked", tm, err)
	}
	status, h, reply := do(t, "POST", ts.url+"/v1/admin/terminals/NOPE/revoke", "", "Bearer "+testAdminToken, nil)
	wantProblem(t, status, h, reply, http.StatusNotFound, server.CodeNotFound)
}

func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
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

func TestNewEnrollCodeIsRandomAndReadable(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		c, err := server.NewEnrollCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != 24 || strings.Count(c, "-") != 4 || strings.ContainsAny(c, "ILOU") {
			t.Fatalf("code %q: want 5 groups of 4 Crockford base-32 characters", c)
		}
		if server.NormalizeEnrollCode(strings.ToLower(c)) != c {
			t.Errorf("NormalizeEnrollCode(lower(%q)) = %q", c, server.NormalizeEnrollCode(strings.ToLower(c)))
		}
		if seen[c] {
			t.Fatalf("code %q made twice", c)
		}
		seen[c] = true
	}
}

// TestReadyzFollowsTheDatabase: a load balancer keeps terminals away from
// a cloud whose ledger database does not answer, and only then.
func TestReadyzFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	for name, dsn := range map[string]func(testing.TB) string{
		"sqlite":   func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "ledger.db") },
		"postgres": storetest.PostgresSchema,
	} {
		t.Run(name, func(t *testing.T) {
			// Opened here, not by storetest, whose cleanup checks a ledger
			// this test closes.
			ledger, err := sqlstore.Open(context.Background(), dsn(t), sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ts := newTestServerWith(t, ledger)
			if status, _, body := do(t, "GET", ts.url+"/readyz", "", "", nil); status != http.StatusOK || string(body) != "ready\n" {
				t.Fatalf("readyz with the database up: %d %q, want 200 ready", status, body)
			}
			ledger.Close() // the database is gone
			status, h, body := do(t, "GET", ts.url+"/readyz", "", "", nil)
			wantProblem(t, status, h, body, http.StatusServiceUnavailable, server.CodeUnavailable)
			if status, _, _ := do(t, "GET", ts.url+"/healthz", "", "", nil); status != http.StatusOK {
				t.Errorf("healthz with the database gone: %d, want 200: the process lives", status)
			}
		})
	}
}
