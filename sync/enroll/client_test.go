package enroll_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

func keyID(pub []byte) string { return batch.Fingerprint(pub) }

// fakeCloud answers POST /v1/enroll like cloud/server does, checking the
// proof of possession; it is the edge of these unit tests (the real server
// is exercised end to end in cmd/tillpoint).
func fakeCloud(t *testing.T, cloudPub ed25519.PublicKey, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req batch.EnrollRequest
		if r.URL.Path != "/v1/enroll" || r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if req.Code != "GOOD-CODE" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"code":"enroll_code_used","title":"used","detail":"ask for a new code","status":410}`))
			return
		}
		if !ed25519.Verify(req.PublicKey, batch.EnrollProofMessage(req.Code, req.PublicKey), req.Proof) {
			http.Error(w, "bad proof", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(batch.EnrollResponse{Program: "prog", Store: "S1", Terminal: "T1",
			TerminalKeyID: keyID(req.PublicKey), CloudPublicKey: cloudPub, CloudKeyID: keyID(cloudPub)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestEnrollWritesStateThatLoadReadsBack(t *testing.T) {
	cloudPub, _, _ := ed25519.GenerateKey(rand.Reader)
	var calls atomic.Int32
	srv := fakeCloud(t, cloudPub, &calls)
	dir := filepath.Join(t.TempDir(), "state")

	st, err := enroll.NewClient().Enroll(context.Background(), srv.URL, "GOOD-CODE", dir)
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	got, err := enroll.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.Program != "prog" || got.Store != "S1" || got.Terminal != "T1" || got.CloudURL != srv.URL {
		t.Errorf("Load = program %q store %q terminal %q url %q, want prog S1 T1 %s", got.Program, got.Store, got.Terminal, got.CloudURL, srv.URL)
	}
	if !got.Key.Equal(st.Key) {
		t.Errorf("Load returned a different terminal key than Enroll made")
	}
	if !got.CloudKey.Equal(cloudPub) {
		t.Errorf("Load cloud key %x, want %x", got.CloudKey, cloudPub)
	}
	if got.TerminalKeyID != keyID(st.Key.Public().(ed25519.PublicKey)) {
		t.Errorf("terminal key ID %q does not name the terminal key", got.TerminalKeyID)
	}
	for name, want := range map[string]os.FileMode{enroll.KeyFile: 0o600, enroll.CloudKeyFile: 0o644, enroll.EnrollmentFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("stat %s: %v", name, err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode = %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode = %v, want 0700", fi.Mode().Perm())
	}
}

func TestEnrollRefusesAnEnrolledDirectory(t *testing.T) {
	cloudPub, _, _ := ed25519.GenerateKey(rand.Reader)
	var calls atomic.Int32
	srv := fakeCloud(t, cloudPub, &calls)
	dir := t.TempDir()
	c := enroll.NewClient()
	first, err := c.Enroll(context.Background(), srv.URL, "GOOD-CODE", dir)
	if err != nil {
		t.Fatalf("first Enroll: %v", err)
	}
	_, err = c.Enroll(context.Background(), srv.URL, "GOOD-CODE", dir)
	if !errors.Is(err, enroll.ErrAlreadyEnrolled) {
		t.Fatalf("second Enroll error = %v, want ErrAlreadyEnrolled", err)
	}
	if calls.Load() != 1 {
		t.Errorf("cloud called %d times, want 1: a refused enrollment must not reach the cloud", calls.Load())
	}
	again, err := enroll.Load(dir)
	if err != nil || !again.Key.Equal(first.Key) {
		t.Errorf("the enrolled state changed after a refused enrollment (err %v)", err)
	}
}

func TestEnrollReportsTheCloudsProblemAndKeepsTheKeyForARetry(t *testing.T) {
	cloudPub, _, _ := ed25519.GenerateKey(rand.Reader)
	var calls atomic.Int32
	srv := fakeCloud(t, cloudPub, &calls)
	dir := t.TempDir()
	c := enroll.NewClient()

	_, err := c.Enroll(context.Background(), srv.URL, "SPENT", dir)
	var pe *enroll.ProblemError
	if !errors.As(err, &pe) || pe.Code != "enroll_code_used" || pe.Status != http.StatusGone {
		t.Fatalf("Enroll with a spent code: error %v, want a ProblemError enroll_code_used/410", err)
	}
	if _, err := enroll.Load(dir); !errors.Is(err, enroll.ErrNotEnrolled) {
		t.Fatalf("Load after a failed enrollment: %v, want ErrNotEnrolled", err)
	}
	keyBefore, err := os.ReadFile(filepath.Join(dir, enroll.KeyFile))
	if err != nil {
		t.Fatalf("the key made for the failed attempt is gone: %v", err)
	}
	if _, err := c.Enroll(context.Background(), srv.URL, "GOOD-CODE", dir); err != nil {
		t.Fatalf("retry with a good code: %v", err)
	}
	keyAfter, _ := os.ReadFile(filepath.Join(dir, enroll.KeyFile))
	if string(keyBefore) != string(keyAfter) {
		t.Errorf("the retry replaced the terminal key; want it reused")
	}
}

func TestLoadRefusesAKeyOthersCanRead(t *testing.T) {
	cloudPub, _, _ := ed25519.GenerateKey(rand.Reader)
	var calls atomic.Int32
	srv := fakeCloud(t, cloudPub, &calls)
	dir := t.TempDir()
	if _, err := enroll.NewClient().Enroll(context.Background(), srv.URL, "GOOD-CODE", dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, enroll.KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Load(dir); err == nil {
		t.Fatalf("Load accepted a world-readable terminal key")
	}
}

func TestEnrollRejectsABadCloudURL(t *testing.T) {
	for _, u := range []string{"", "cloud.example.com", "ftp://x", "https://"} {
		if _, err := enroll.NewClient().Enroll(context.Background(), u, "CODE", t.TempDir()); err == nil {
			t.Errorf("Enroll(%q) succeeded, want an error", u)
		}
	}
}

func TestEnrollRefusesAnUnexpectedCloudKey(t *testing.T) {
	cloudPub, _, _ := ed25519.GenerateKey(rand.Reader)
	var calls atomic.Int32
	srv := fakeCloud(t, cloudPub, &calls)
	dir := t.TempDir()
	c := enroll.NewClient()
	c.ExpectCloudKeyID = "00112233445566ff"
	if _, err := c.Enroll(context.Background(), srv.URL, "GOOD-CODE", dir); !errors.Is(err, enroll.ErrCloudKeyMismatch) {
		t.Fatalf("Enroll against another cloud key: %v, want ErrCloudKeyMismatch", err)
	}
	if _, err := enroll.Load(dir); !errors.Is(err, enroll.ErrNotEnrolled) {
		t.Errorf("Load after a refused cloud key: %v, want ErrNotEnrolled", err)
	}
	c.ExpectCloudKeyID = strings.ToUpper(keyID(cloudPub))
	if _, err := c.Enroll(context.Background(), srv.URL, "GOOD-CODE", t.TempDir()); err != nil {
		t.Errorf("Enroll with the right cloud key id: %v", err)
	}
}
