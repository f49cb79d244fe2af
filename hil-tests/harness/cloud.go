package harness

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/enroll"

	_ "modernc.org/sqlite" // read-only checks of the cloud database
)

// Program is the loyalty program every cloud of the harness runs.
const Program = "tillpoint"

// Cloud is a running 'tillpoint cloud' on SQLite in a temporary directory.
type Cloud struct {
	URL  string // http://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT
	DB   string // sqlite:PATH
	Dir  string
	Proc *Proc
	// CardKey is the program's card hash key, hex, which the cloud reads
	// from its --card-key file and hands out sealed at enrollment (see
	// Enroll).
	CardKey string
}

// StartCloud runs a cloud on a fresh SQLite database and a free port and
// waits until it serves.
func StartCloud(t testing.TB) *Cloud {
	t.Helper()
	dir := t.TempDir()
	c := &Cloud{Dir: dir, DB: "sqlite:" + filepath.Join(dir, "cloud.db")}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c.CardKey = hex.EncodeToString(key)
	cardKeyFile := filepath.Join(dir, "card.key")
	if err := os.WriteFile(cardKeyFile, []byte(c.CardKey+"\n"), 0o600); err != nil {
		t.Fatalf("harness: write the cloud's card key: %v", err)
	}
	c.Proc = Start(t, "cloud", nil, "cloud", "--db", c.DB, "--listen", "127.0.0.1:0", "--program", Program, "--card-key", cardKeyFile, "--log-format", "text")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rest, err := c.Proc.WaitOutput(ctx, "tillpoint cloud listening on ")
	if err != nil {
		t.Fatalf("harness: start cloud: %v", err)
	}
	c.URL, _, _ = strings.Cut(rest, " ")
	c.Addr = strings.TrimPrefix(c.URL, "http://")
	c.PublishRules(t, Rules())
	return c
}

// Rules are the earn rules every harness cloud publishes first (version
// 1), small enough for a test to compute by hand: one point per whole
// euro, Bronze from 0 and Silver from 1,000 points (no tier bonus), and
// one reward, a coffee for 100 points.
func Rules() loyalty.Rules {
	return loyalty.Rules{
		Version: 1, Program: Program, Currency: "EUR",
		BasePoints: 1, BasePer: 100,
		Tiers:   []loyalty.Tier{{Name: "Bronze", Threshold: 0}, {Name: "Silver", Threshold: 1000}},
		Rewards: []loyalty.Reward{{ID: "coffee", Name: "Coffee", Cost: 100}},
	}
}

// PublishRules publishes r with 'tillpoint cloud publish-rules', as an
// operator does.
func (c *Cloud) PublishRules(t testing.TB, r loyalty.Rules) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("harness: encode rules: %v", err)
	}
	path := filepath.Join(c.Dir, fmt.Sprintf("rules-v%d.json", r.Version))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("harness: write rules: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := Run(ctx, t, "cloud", "publish-rules", "--db", c.DB, "--program", Program, "--file", path); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// EnrollCode makes a one-time enrollment code with 'tillpoint cloud
// enroll-code', as an operator does.
func (c *Cloud) EnrollCode(t testing.TB, store, terminal string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := Run(ctx, t, "cloud", "enroll-code", "--db", c.DB, "--store", store, "--terminal", terminal)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return strings.TrimSpace(out)
}

// Terminal is an enrolled terminal's state directory.
type Terminal struct {
	ID, Store string
	StateDir  string // the agent's state_dir
	EnrollDir string // StateDir/enroll: key, cloud key, enrollment.json, card.key
}

// State loads the enrollment written by 'tillpoint enroll'.
func (tm *Terminal) State(t testing.TB) *enroll.State {
	t.Helper()
	st, err := enroll.Load(tm.EnrollDir)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return st
}

// Enroll makes a code for terminal of store and runs 'tillpoint enroll'
// against cloudURL (the cloud itself, or a proxy in front of it) into a
// fresh state directory, as EnrollAdvertising does without a gossip
// address.
func (c *Cloud) Enroll(t testing.TB, cloudURL, store, terminal string) *Terminal {
	t.Helper()
	return c.EnrollAdvertising(t, cloudURL, store, terminal, "")
}

// EnrollAdvertising makes a code for terminal of store and runs 'tillpoint
// enroll --advertise' against cloudURL into a fresh state directory:
// advertise (IP:PORT, empty for none) is the till's gossip address in the
// store roster. The cloud hands the till its store's roster and keyring
// and the program's card key; the enrollment fails the test unless the
// card key it wrote is the cloud's.
func (c *Cloud) EnrollAdvertising(t testing.TB, cloudURL, store, terminal, advertise string) *Terminal {
	t.Helper()
	code := c.EnrollCode(t, store, terminal)
	state := t.TempDir()
	tm := &Terminal{ID: terminal, Store: store, StateDir: state, EnrollDir: filepath.Join(state, "enroll")}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"enroll", "--cloud", cloudURL, "--code", code, "--dir", tm.EnrollDir, "--timeout", "20s"}
	if advertise != "" {
		args = append(args, "--advertise", advertise)
	}
	if _, err := Run(ctx, t, args...); err != nil {
		t.Fatalf("harness: %v", err)
	}
	st := tm.State(t)
	if st.Store != store || st.Terminal != terminal {
		t.Fatalf("harness: enrolled as terminal %q of store %q, want %q of %q", st.Terminal, st.Store, terminal, store)
	}
	if advertise != "" && !RosterLists(st.Roster, terminal, advertise) {
		t.Fatalf("harness: the store roster %s got at enrollment does not list it at %s (--advertise)", tm, advertise)
	}
	got, err := os.ReadFile(filepath.Join(tm.EnrollDir, enroll.CardKeyFile))
	if err != nil {
		t.Fatalf("harness: the enrollment of %s brought no card key: %v", tm, err)
	}
	if strings.TrimSpace(string(got)) != c.CardKey {
		t.Fatalf("harness: the enrollment of %s wrote another card key than the cloud's", tm)
	}
	return tm
}

// RosterLists reports whether the store roster r lists terminal, not
// revoked, at the gossip address addr.
func RosterLists(r *enroll.Roster, terminal, addr string) bool {
	if r == nil {
		return false
	}
	for _, m := range r.Doc.Terminals {
		if m.ID == terminal && m.Addr == addr && !m.Revoked {
			return true
		}
	}
	return false
}

// RotateGossipKey runs 'tillpoint cloud rotate-gossip-key --store S', or
// with finish its --finish step, as an operator does, and returns what it
// printed.
func (c *Cloud) RotateGossipKey(t testing.TB, store string, finish bool) string {
	t.Helper()
	args := []string{"cloud", "rotate-gossip-key", "--db", c.DB, "--store", store}
	if finish {
		args = append(args, "--finish")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := Run(ctx, t, args...)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return strings.TrimSpace(out)
}

// Revoke runs 'tillpoint cloud revoke --terminal T', as an operator does.
func (c *Cloud) Revoke(t testing.TB, terminal string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := Run(ctx, t, "cloud", "revoke", "--db", c.DB, "--terminal", terminal); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// String names the terminal for messages.
func (tm *Terminal) String() string { return fmt.Sprintf("%s/%s", tm.Store, tm.ID) }

// QueryInt runs a read-only SQL query that returns one integer against the
// cloud's SQLite database, for checks a scenario cannot make through the
// API (the store an op was booked to, say).
func (c *Cloud) QueryInt(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	path := strings.TrimPrefix(c.DB, "sqlite:")
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatalf("harness: open cloud db: %v", err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("harness: %s: %v", query, err)
	}
	return n
}

// Check runs 'tillpoint cloud check' on the cloud's database while it
// serves: postings sum to zero, lots match balances, the liability is the
// sum of balances (invariant 3). The test fails with its report otherwise.
func (c *Cloud) Check(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := Run(ctx, t, "cloud", "check", "--db", c.DB); err != nil {
		t.Errorf("cloud check (invariant 3): %v\n%s", err, out)
	}
}
