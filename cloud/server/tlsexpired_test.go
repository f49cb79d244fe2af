package server

import (
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
	"github.com/tillpoint/tillpoint/internal/testcert"
)

// A pair copied over the files that is already expired (an old backup
// restored, a renewal that went wrong) must not replace a valid
// certificate in service: every till's handshake would fail. It did
// (found by a review); the cloud now keeps the valid one and logs why.
func TestExpiredCertificateDoesNotReplaceAValidOne(t *testing.T) {
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
	s.certCheckEvery = time.Nanosecond
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
		t.Fatalf("served %q, want cloud-a", got)
	}
	certOld, keyOld := testcert.SelfSigned(t, "cloud-expired", time.Now().Add(-30*time.Minute))
	writeFile(t, certFile, certOld)
	writeFile(t, keyFile, keyOld)
	if got := served(); got != "cloud-a" {
		t.Errorf("after an expired pair was copied in, served %q (expires %v); want cloud-a, valid, still in service", got, s.CertificateExpiry())
	}
	if !strings.Contains(logs.String(), "expired on") {
		t.Errorf("no log line says why the new pair was not loaded; log:\n%s", logs.String())
	}
}
