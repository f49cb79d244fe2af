package enroll_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

// realCloud serves a real cloud ledger on SQLite over HTTP; enroll makes
// a code for terminal of store S1 and enrolls a fresh state directory.
type realCloud struct {
	url    string
	ledger *sqlstore.Store
}

func startRealCloud(t *testing.T) *realCloud {
	t.Helper()
	ctx := context.Background()
	ledger, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := server.New(ledger, key, "prog")
	s.Addr, s.CardKey = "127.0.0.1:0", bytes.Repeat([]byte{0x3c}, 32)
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return &realCloud{url: s.URL(), ledger: ledger}
}

func (c *realCloud) enroll(t *testing.T, terminal, advertise string) *enroll.State {
	t.Helper()
	now := time.Now()
	code, err := server.CreateEnrollCode(context.Background(), c.ledger, "S1", terminal, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cl := enroll.NewClient()
	cl.Advertise = advertise
	st, err := cl.Enroll(context.Background(), c.url, code.Code, filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatalf("enroll %s: %v", terminal, err)
	}
	return st
}

// Enrollment keeps the store's roster, keyring and card key, the secrets
// mode 0600; Load reads them back and refuses a keyring others can read.
func TestEnrollKeepsTheRosterAndTheStoresKeys(t *testing.T) {
	c := startRealCloud(t)
	st := c.enroll(t, "T1", "10.0.0.1:7946")
	got, err := enroll.Load(st.Dir)
	if err != nil {
		t.Fatal(err)
	}
	r := got.Roster
	if r == nil || r.Version() == 0 || len(r.Doc.Terminals) != 1 || r.Doc.Terminals[0].Addr != "10.0.0.1:7946" || len(r.GossipKeys) != 1 {
		t.Fatalf("loaded roster %+v, want T1 with its address and one gossip key", r)
	}
	card, err := os.ReadFile(filepath.Join(st.Dir, enroll.CardKeyFile))
	if err != nil || strings.TrimSpace(string(card)) != strings.Repeat("3c", 32) {
		t.Errorf("card key file %q, %v; want the cloud's card key in hex", card, err)
	}
	for _, f := range []string{enroll.CardKeyFile, enroll.GossipKeysFile} {
		if fi, err := os.Stat(filepath.Join(st.Dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v; want mode 0600", f, err)
		}
	}
	if err := os.Chmod(filepath.Join(st.Dir, enroll.GossipKeysFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Load(st.Dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Load with a world-readable keyring: %v, want a refusal saying chmod 600", err)
	}
}

// A roster the cloud signed for another terminal is not this terminal's
// (its secrets are sealed to the other one): FetchRoster refuses it, and a
// fresh one from the cloud is newer than the enrollment's.
func TestFetchRosterRefusesAnotherTerminalsRoster(t *testing.T) {
	c := startRealCloud(t)
	t1 := c.enroll(t, "T1", "")
	t2 := c.enroll(t, "T2", "")
	r, err := t1.FetchRoster(context.Background(), http.DefaultClient, c.url, t1.Roster.Version())
	if err != nil {
		t.Fatalf("FetchRoster: %v", err)
	}
	if r.Version() <= t1.Roster.Version() || len(r.Doc.Terminals) != 2 || !bytes.Equal(r.GossipKeys[0], t1.Roster.GossipKeys[0]) {
		t.Errorf("fetched roster: version %d (enrolled with %d), %d tills; want T2 too, a newer version, the same key", r.Version(), t1.Roster.Version(), len(r.Doc.Terminals))
	}
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(t2.Roster.Raw) }))
	defer relay.Close()
	if _, err := t1.FetchRoster(context.Background(), http.DefaultClient, relay.URL, 0); err == nil || !strings.Contains(err.Error(), "issued to terminal \"T2\"") {
		t.Errorf("T2's roster served to T1: %v, want a refusal naming T2", err)
	}
	if _, err := t1.FetchRoster(context.Background(), http.DefaultClient, c.url, r.Version()+1); !errors.Is(err, enroll.ErrStaleRoster) {
		t.Errorf("a roster older than the one held: %v, want ErrStaleRoster", err)
	}
}
