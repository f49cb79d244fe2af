package server

import (
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
	"github.com/tillpoint/tillpoint/internal/testcert"
)

// TestRenewedCertificateIsServedWithoutARestart defends a cloud whose TLS
// certificate is renewed in place (certbot, an ACME client): a new pair is
// served from the next handshake after the check, a pair that does not
// load (a certificate whose key is not written yet) leaves the old one in
// service and is logged once, and the renewal completes when the key
// arrives. Real TLS handshakes against the running server.
func TestRenewedCertificateIsServedWithoutARestart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certA, keyA := testcert.SelfSigned(t, "cloud-a", time.Now().AddDate(0, 3, 0))
	writeFile(t, certFile, certA)
	writeFile(t, keyFile, keyA)

	key, _, err := LoadOrCreateKey(filepath.Join(dir, "cloud.key"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(storetest.OpenSQLite(t, sqlstore.Options{}), key, "acme")
	s.Addr, s.TLSCertFile, s.TLSKeyFile = "127.0.0.1:0", certFile, keyFile
	s.certCheckEvery = time.Nanosecond // look at the files at every handshake
	logs := &syncbuf.Buffer{}
	s.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	served := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL(), "https://"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "cloud-a" {
		t.Fatalf("served %q, want the certificate it started with", got)
	}
	expiryA := s.CertificateExpiry()

	certB, keyB := testcert.SelfSigned(t, "cloud-b", time.Now().AddDate(0, 3, 0))
	writeFile(t, certFile, certB)
	writeFile(t, keyFile, keyB)
	if got := served(); got != "cloud-b" {
		t.Errorf("after the renewal served %q, want cloud-b", got)
	}

	certC, keyC := testcert.SelfSigned(t, "cloud-c", time.Now().Add(48*time.Hour))
	writeFile(t, certFile, certC) // the key follows later
	for range 3 {
		if got := served(); got != "cloud-b" {
			t.Errorf("with a certificate whose key is not written yet served %q, want cloud-b still", got)
		}
	}
	if n := strings.Count(logs.String(), "does not load"); n != 1 {
		t.Errorf("a pair that does not load was logged %d times, want once:\n%s", n, logs)
	}
	writeFile(t, keyFile, keyC)
	if got := served(); got != "cloud-c" {
		t.Errorf("once the key arrived served %q, want cloud-c", got)
	}
	if exp := s.CertificateExpiry(); !exp.Before(expiryA) || time.Until(exp) > 49*time.Hour {
		t.Errorf("certificate expiry after the renewal to a two-day certificate: %v (was %v)", exp, expiryA)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") || !strings.Contains(logs.String(), "expires soon") {
		t.Errorf("the log does not tell of the reload and of the certificate expiring in two days:\n%s", logs)
	}

	// A key file removed (a renewal in progress, an operator's mistake):
	// the pair in service stays, and the log says so once.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := served(); got != "cloud-c" {
			t.Errorf("with the key file gone served %q, want cloud-c still", got)
		}
	}
	if n := strings.Count(logs.String(), "does not load"); n != 2 {
		t.Errorf("a key file gone was logged %d times beside the earlier one, want once:\n%s", n-1, logs)
	}

	// An expired pair copied over the files (an old backup restored, a
	// renewal gone wrong) does not replace the valid one in service:
	// every till's handshake would fail. It did (found by a review).
	certOld, keyOld := testcert.SelfSigned(t, "cloud-expired", time.Now().Add(-30*time.Minute))
	writeFile(t, certFile, certOld)
	writeFile(t, keyFile, keyOld)
	if got := served(); got != "cloud-c" {
		t.Errorf("after an expired pair was copied in, served %q; want cloud-c, valid, still in service", got)
	}
	if !strings.Contains(logs.String(), "expired on") {
		t.Errorf("no log line says why the expired pair was not loaded:\n%s", logs)
	}
}

// TestRenewalThatKeepsTheFilesTimesIsServed: a renewed pair copied in
// with the old files' modification times (cp -p, rsync -t) and of the
// same sizes is still a new certificate, and is served after the check.
func TestRenewalThatKeepsTheFilesTimesIsServed(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certA, keyA := testcert.SelfSigned(t, "cloud-a", time.Now().AddDate(0, 3, 0))
	certB, keyB := testcert.SelfSigned(t, "cloud-b", time.Now().AddDate(0, 3, 0))
	for len(certB) != len(certA) || len(keyB) != len(keyA) { // ECDSA signatures vary in length
		certB, keyB = testcert.SelfSigned(t, "cloud-b", time.Now().AddDate(0, 3, 0))
	}
	writeFile(t, certFile, certA)
	writeFile(t, keyFile, keyA)
	stamp := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	c, err := loadCertFiles(certFile, keyFile, time.Nanosecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}

	writeFile(t, certFile, certB)
	writeFile(t, keyFile, keyB)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := c.getCertificate(nil)
	if err != nil || cert.Leaf.Subject.CommonName != "cloud-b" {
		t.Errorf("after a renewal with the same sizes and times: served %v, %v; want cloud-b", cert.Leaf.Subject, err)
	}
}

// TestServerWithoutItsCertificateDoesNotStart: a missing or broken pair
// stops Open with the file named, rather than serving without TLS.
func TestServerWithoutItsCertificateDoesNotStart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert, _ := testcert.SelfSigned(t, "cloud", time.Now().AddDate(1, 0, 0))
	writeFile(t, certFile, cert)
	key, _, err := LoadOrCreateKey(filepath.Join(dir, "cloud.key"))
	if err != nil {
		t.Fatal(err)
	}
	for name, keyContent := range map[string][]byte{"missing key": nil, "garbled key": []byte("-----BEGIN PRIVATE KEY-----\nno\n")} {
		if keyContent != nil {
			writeFile(t, keyFile, keyContent)
		}
		s := New(storetest.OpenSQLite(t, sqlstore.Options{}), key, "acme")
		s.Addr, s.TLSCertFile, s.TLSKeyFile = "127.0.0.1:0", certFile, keyFile
		s.Logger = slog.New(slog.DiscardHandler)
		err := s.Open()
		if err == nil {
			s.Close(t.Context())
			t.Fatalf("%s: Open succeeded", name)
		}
		if !strings.Contains(err.Error(), "key.pem") {
			t.Errorf("%s: %v; want the key file named", name, err)
		}
	}
}

func writeFile(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
}
