package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/internal/syncbuf"
	"github.com/tillpoint/tillpoint/internal/testcert"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

// runningCloud is `tillpoint cloud` serving in the background of a test.
type runningCloud struct {
	url    string
	keyID  string // the cloud key fingerprint it printed
	stderr *syncbuf.Buffer
	// stop stops it and checks it exited 0; the test's cleanup calls it.
	stop func()
}

// startCloud starts `tillpoint cloud` with args on 127.0.0.1:0 and waits
// for it to print its URL; the test's cleanup stops it and checks it exited 0.
func startCloud(t testing.TB, env map[string]string, args ...string) *runningCloud {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	done := make(chan int, 1)
	go func() {
		done <- m.Run(ctx, append([]string{"cloud", "--listen", "127.0.0.1:0", "--log-format", "text"}, args...))
	}()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("cloud exited %d after cancel; stderr:\n%s", code, errOut.String())
			}
		case <-time.After(15 * time.Second):
			t.Errorf("cloud did not stop within 15s of cancel")
		}
	})
	t.Cleanup(stop)
	urlRE := regexp.MustCompile(`listening on (https?://\S+) \(program \S+, cloud key ([0-9a-f]+)\)`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := urlRE.FindStringSubmatch(out.String()); m != nil {
			return &runningCloud{url: m[1], keyID: m[2], stderr: &errOut, stop: stop}
		}
		select {
		case code := <-done:
			t.Fatalf("cloud exited %d before serving; stderr:\n%s", code, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("cloud printed no URL within 15s; stdout %q stderr:\n%s", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signedGet fetches path from the cloud as the enrolled terminal st.
func signedGet(t *testing.T, client *http.Client, st *enroll.State, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", st.CloudURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.SignRequest(req, time.Now())
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestEnrollCodeEnrollRevokeAndCheckThroughTheCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "var", "ledger.db")
	cl := startCloud(t, nil, "--db", db, "--program", "acme")

	keyInfo, err := os.Stat(filepath.Join(dir, "var", "cloud.key"))
	if err != nil {
		t.Fatalf("the cloud's signing key was not made beside the database: %v", err)
	}
	if keyInfo.Mode().Perm() != 0o600 {
		t.Errorf("cloud key mode %v, want 0600", keyInfo.Mode().Perm())
	}

	state := filepath.Join(dir, "terminal")
	once := enrollCode(t, db, "T1")
	code, out, errOut := run(t, "enroll", "--cloud", cl.url, "--code", once, "--dir", state, "--cloud-key-id", cl.keyID)
	if code != 0 {
		t.Fatalf("enroll exited %d: %s", code, errOut)
	}
	if !strings.Contains(out, "enrolled terminal T1 of store S1 in program acme") {
		t.Errorf("enroll output %q does not say who the terminal is", out)
	}
	st, err := enroll.Load(state)
	if err != nil {
		t.Fatalf("load the enrolled state: %v", err)
	}
	if st.Program != "acme" || st.Store != "S1" || st.Terminal != "T1" {
		t.Errorf("state program %q store %q terminal %q, want acme S1 T1", st.Program, st.Store, st.Terminal)
	}
	if st.TerminalKeyID != batch.Fingerprint(st.Key.Public().(ed25519.PublicKey)) {
		t.Errorf("state terminal key id %q does not name its key", st.TerminalKeyID)
	}

	// The code works once.
	code, _, errOut = run(t, "enroll", "--cloud", cl.url, "--code", once, "--dir", filepath.Join(dir, "second"))
	if code != 1 || !strings.Contains(errOut, "enroll_code_invalid") {
		t.Errorf("second enroll with the same code: exit %d, stderr %q; want 1 and enroll_code_invalid", code, errOut)
	}

	// The terminal reads its store's snapshots, signed by the key it pinned.
	status, body := signedGet(t, http.DefaultClient, st, "/v1/snapshots")
	if status != http.StatusOK {
		t.Fatalf("snapshots as the enrolled terminal: %d %s", status, body)
	}
	if set, err := batch.OpenSnapshots(body, st.Program, st.CloudKey); err != nil || set.Store != "S1" {
		t.Fatalf("snapshots do not verify against the pinned cloud key: %v", err)
	}

	rulesFile := filepath.Join(dir, "rules.json")
	if err := os.WriteFile(rulesFile, []byte(`{"version":1,"program":"acme","currency":"EUR","base_points":1,"base_per":100}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "cloud", "publish-rules", "--db", db, "--file", rulesFile, "--program", "acme")
	if code != 0 || !strings.Contains(out, "published rules version 1") {
		t.Fatalf("publish-rules exited %d: %s %s", code, out, errOut)
	}
	status, body = signedGet(t, http.DefaultClient, st, "/v1/rules")
	if status != http.StatusOK {
		t.Fatalf("rules as the enrolled terminal: %d %s", status, body)
	}
	if doc, err := batch.OpenRules(body, st.Program, st.CloudKey); err != nil || doc.Rules.Version != 1 {
		t.Fatalf("rules do not verify against the pinned cloud key: %v", err)
	}
	if code, _, errOut = run(t, "cloud", "publish-rules", "--db", db, "--file", rulesFile, "--program", "other"); code != 1 || !strings.Contains(errOut, "invalid_rules") {
		t.Errorf("publish-rules for another program: exit %d, %q; want 1 and invalid_rules", code, errOut)
	}

	code, out, errOut = run(t, "cloud", "revoke", "--db", db, "--terminal", "T1")
	if code != 0 || !strings.Contains(out, "revoked terminal T1") {
		t.Fatalf("revoke exited %d: %s %s", code, out, errOut)
	}
	status, body = signedGet(t, http.DefaultClient, st, "/v1/snapshots")
	if status != http.StatusForbidden || !strings.Contains(string(body), "terminal_revoked") {
		t.Errorf("snapshots after revoke: %d %s, want 403 terminal_revoked", status, body)
	}

	code, out, errOut = run(t, "cloud", "check", "--db", db)
	if code != 0 || !strings.Contains(out, "ok: every balance matches") {
		t.Errorf("check exited %d: %s %s", code, out, errOut)
	}
}

// TestEnrollTakesTheCodeOffTheCommandLine: a code read from standard input
// or the environment never shows in the process list, and enrolls as one
// given with --code does.
func TestEnrollTakesTheCodeOffTheCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "ledger.db")
	cl := startCloud(t, nil, "--db", db)

	code, out, errOut := runWith(t, "  "+enrollCode(t, db, "T1")+"\n", nil, "enroll", "--cloud", cl.url, "--code", "-", "--dir", filepath.Join(dir, "t1"))
	if code != 0 || !strings.Contains(out, "enrolled terminal T1") {
		t.Errorf("enroll --code - exited %d: %s %s", code, out, errOut)
	}
	env := map[string]string{"TILLPOINT_ENROLL_CODE": enrollCode(t, db, "T2")}
	code, out, errOut = runWith(t, "", env, "enroll", "--cloud", cl.url, "--dir", filepath.Join(dir, "t2"))
	if code != 0 || !strings.Contains(out, "enrolled terminal T2") {
		t.Errorf("enroll with TILLPOINT_ENROLL_CODE exited %d: %s %s", code, out, errOut)
	}
	code, _, errOut = runWith(t, "\n", nil, "enroll", "--cloud", cl.url, "--code", "-", "--dir", filepath.Join(dir, "t3"))
	if code != 2 || !strings.Contains(errOut, "read no code from standard input") {
		t.Errorf("enroll --code - with nothing piped: exit %d, %q; want 2 and a usage error", code, errOut)
	}
}

func TestCloudAdminAPIThroughTheCLIsToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin.token")
	token := "c0ffee-c0ffee-c0ffee-c0ffee-c0ffee"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := startCloud(t, nil, "--db", "sqlite:"+filepath.Join(dir, "ledger.db"), "--admin-token-file", tokenFile)
	req, _ := http.NewRequest("POST", cl.url+"/v1/admin/enroll-codes", strings.NewReader(`{"store":"S1","terminal":"T1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("admin enroll code: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(cl.stderr.String(), token) {
		t.Errorf("the cloud logged its admin token")
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := testcert.SelfSigned(t, "tillpoint test cloud", time.Now().Add(time.Hour))
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestEnrollOverTLSTrustsOnlyTheGivenCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "ledger.db")
	cert, key := writeTestCert(t, dir)
	const token = "tls-tls-tls-tls-tls-tls-tls-tls-0"
	cl := startCloud(t, map[string]string{"TILLPOINT_ADMIN_TOKEN": token}, "--db", db, "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(cl.url, "https://") {
		t.Fatalf("cloud URL %q, want https", cl.url)
	}
	wantCertExpiryMetric(t, cl.url, token, cert)
	code1 := enrollCode(t, db, "T1")
	code, _, errOut := run(t, "enroll", "--cloud", cl.url, "--code", code1, "--dir", filepath.Join(dir, "untrusted"))
	if code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("enroll without --ca: exit %d, stderr %q; want 1 and a certificate error", code, errOut)
	}
	code, _, errOut = run(t, "enroll", "--cloud", cl.url, "--code", code1, "--dir", filepath.Join(dir, "state"), "--ca", cert)
	if code != 0 {
		t.Fatalf("enroll with --ca: exit %d: %s", code, errOut)
	}
}

func TestCloudAndEnrollUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	worldReadable := filepath.Join(dir, "token")
	if err := os.WriteFile(worldReadable, []byte("0123456789abcdef0123"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"cloud help", []string{"cloud", "--help"}, 0, "enroll-code --store S --terminal T"},
		{"enroll help", []string{"enroll", "--help"}, 0, "--code"},
		{"bad db", []string{"cloud", "--db", "mysql://x", "--key", filepath.Join(dir, "k")}, 2, "want sqlite:PATH or postgres://"},
		{"postgres without key", []string{"cloud", "--db", "postgres://u:secret@db/x"}, 2, "pass --key"},
		{"unknown subcommand", []string{"cloud", "frobnicate"}, 2, "unknown subcommand"},
		{"enroll-code without store", []string{"cloud", "enroll-code", "--terminal", "T1"}, 2, "need --store"},
		{"enroll-code ttl", []string{"cloud", "enroll-code", "--store", "S", "--terminal", "T", "--ttl", "-1h"}, 2, "--ttl"},
		{"revoke without terminal", []string{"cloud", "revoke"}, 2, "need --terminal"},
		{"enroll without code", []string{"enroll", "--cloud", "http://127.0.0.1:1"}, 2, "--code"},
		{"token others can read", []string{"cloud", "--db", "sqlite:" + filepath.Join(dir, "l.db"), "--admin-token-file", worldReadable}, 1, "chmod 600"},
		{"bad log format", []string{"cloud", "--log-format", "xml"}, 2, "--log-format"},
		{"negative expiry interval", []string{"cloud", "--expire-every", "-1m"}, 2, "--expire-every"},
		{"expire help", []string{"cloud", "expire", "--help"}, 0, "from cron"},
		{"backup without a target", []string{"cloud", "backup"}, 2, "need --to"},
		{"backup of postgres", []string{"cloud", "backup", "--to", filepath.Join(dir, "b.db"), "--db", "postgres://u:secret@db/x"}, 2, "pg_dump"},
		{"backup help", []string{"cloud", "backup", "--help"}, 0, "To restore"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, c.args...)
			if code != c.code || !strings.Contains(out+errOut, c.want) {
				t.Errorf("exit %d, output %q %q; want exit %d mentioning %q", code, out, errOut, c.code, c.want)
			}
			if strings.Contains(out+errOut, "secret") {
				t.Errorf("the output shows the database password: %q", out+errOut)
			}
		})
	}
}

// postgresDSN returns a URL to a fresh schema on TILLPOINT_TEST_POSTGRES,
// dropped when the test ends; it skips without the variable (fails with
// TILLPOINT_HIL=require).
func postgresDSN(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TILLPOINT_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("TILLPOINT_HIL") == "require" {
			t.Fatalf("TILLPOINT_TEST_POSTGRES is not set and TILLPOINT_HIL=require")
		}
		t.Skip("TILLPOINT_TEST_POSTGRES is not set: skipping the PostgreSQL cloud test")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	schema := fmt.Sprintf("tp_cmd_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestCloudOnPostgresEnrollsAndChecks(t *testing.T) {
	t.Parallel()
	db := postgresDSN(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "cloud.key")
	cl := startCloud(t, nil, "--db", db, "--key", key)
	enrollT1(t, cl, db, filepath.Join(dir, "state"))
	if code, out, errOut := run(t, "cloud", "check", "--db", db); code != 0 {
		t.Fatalf("check: %d %s %s", code, out, errOut)
	}
}

// enrollCode makes a one-time code for a till of store S1 with the real
// 'cloud enroll-code' on db.
func enrollCode(t *testing.T, db, terminal string) string {
	t.Helper()
	code, out, errOut := run(t, "cloud", "enroll-code", "--db", db, "--store", "S1", "--terminal", terminal)
	if code != 0 {
		t.Fatalf("enroll-code %s exited %d: %s", terminal, code, errOut)
	}
	return strings.TrimSpace(out)
}

// enrollT1 enrolls till T1 of store S1 into dir with the real 'cloud
// enroll-code' and 'enroll'; extra goes to 'enroll'.
func enrollT1(t *testing.T, cl *runningCloud, db, dir string, extra ...string) {
	t.Helper()
	args := append([]string{"enroll", "--cloud", cl.url, "--code", enrollCode(t, db, "T1"), "--dir", dir}, extra...)
	if code, _, errOut := run(t, args...); code != 0 {
		t.Fatalf("enroll exited %d: %s", code, errOut)
	}
}

// wantCertExpiryMetric checks that the cloud at url tells Prometheus when
// the certificate in certFile, the one it serves, expires.
func wantCertExpiryMetric(t *testing.T, url, token, certFile string) {
	t.Helper()
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("scrape metrics over TLS: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	const name = "tillpoint_cloud_tls_certificate_expiry_timestamp_seconds "
	_, rest, found := strings.Cut(string(body), "\n"+name)
	value, _, _ := strings.Cut(rest, "\n")
	got, err := strconv.ParseFloat(value, 64)
	if !found || err != nil || int64(got) != cert.NotAfter.Unix() {
		t.Errorf("certificate expiry metric %q (%v), want %d:\n%s", value, err, cert.NotAfter.Unix(), body)
	}
}

// TestDatabasePasswordsNeverReachTheLog: whichever way an operator writes
// the PostgreSQL password (the URL's userinfo, libpq's password query
// parameter, a keyword/value string), what the cloud prints hides it.
func TestDatabasePasswordsNeverReachTheLog(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u:hunter2@db:5432/ledger?sslmode=require", "postgres://u:xxxxx@db:5432/ledger?sslmode=require"},
		{"postgres://u@db/ledger?password=hunter2&sslmode=require", "postgres://u@db/ledger?password=xxxxx&sslmode=require"},
		{"postgres://u@db/ledger?sslpassword=hunter2", "postgres://u@db/ledger?sslpassword=xxxxx"},
		{"host=db user=u password=hunter2 dbname=ledger", "host=db user=u password=xxxxx dbname=ledger"},
		{"host=db password = 'hunter2 \\' x' dbname=ledger", "host=db password = xxxxx dbname=ledger"},
		{"sqlite:/var/lib/tillpoint/ledger.db", "sqlite:/var/lib/tillpoint/ledger.db"},
		{"sqlite:ledger.db", "sqlite:ledger.db"},
	} {
		if got := redactDSN(tc.dsn); got != tc.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
	for _, db := range []string{
		"postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=1",
		"postgres://u@127.0.0.1:1/db?password=hunter2&connect_timeout=1",
		"host=127.0.0.1 port=1 user=u password=hunter2 dbname=db",
	} {
		for _, args := range [][]string{
			{"cloud", "check", "--db", db},
			{"cloud", "--db", db, "--key", filepath.Join(t.TempDir(), "cloud.key"), "--listen", "127.0.0.1:0"},
		} {
			code, _, errOut := run(t, args...)
			if code == 0 {
				t.Fatalf("%v exited 0 without a database", args)
			}
			if strings.Contains(errOut, "hunter2") {
				t.Errorf("%s %s --db %s: stderr shows the password: %s", args[0], args[1], db, strings.TrimSpace(errOut))
			}
		}
	}
}

// TestRevokeOfAnUnknownTerminalSaysWhatToDo: a typo in --terminal is told
// as such, not as "cloud: not found".
func TestRevokeOfAnUnknownTerminalSaysWhatToDo(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	startCloud(t, nil, "--db", db).stop() // makes the ledger
	code, _, errOut := run(t, "cloud", "revoke", "--db", db, "--terminal", "T-TYPO")
	if code != 1 || !strings.Contains(errOut, `no terminal "T-TYPO" is enrolled`) || !strings.Contains(errOut, "check the ID") {
		t.Errorf("revoke of an unknown terminal: exit %d, %q; want 1 and what to check", code, strings.TrimSpace(errOut))
	}
}
