package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

// rosterTill is an enrolled till of a roster test, running its wiring.
type rosterTill struct {
	id, state, addr string
	st              *enroll.State
	w               *wiring
	stop            context.CancelFunc
}

// freeGossipAddr returns ip:port with the port free for TCP and UDP now.
func freeGossipAddr(t *testing.T, ip string) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatalf("no free gossip port on %s", ip)
	return ""
}

// enrollTill makes a code, runs 'tillpoint enroll --advertise' and starts
// the till's agent with store peers on and no [peers] roster or key: both
// come from the cloud.
func enrollTill(t *testing.T, ctx context.Context, cloudURL, db, id, ip string) *rosterTill {
	t.Helper()
	tl := &rosterTill{id: id, state: t.TempDir(), addr: freeGossipAddr(t, ip)}
	dir := filepath.Join(tl.state, "enroll")
	code, out, errOut := run(t, "enroll", "--cloud", cloudURL, "--code", enrollCode(t, db, id), "--dir", dir, "--advertise", tl.addr)
	if code != 0 {
		t.Fatalf("enroll %s: %d %s", id, code, errOut)
	}
	if !strings.Contains(out, "card key received") {
		t.Errorf("enroll %s printed %q, want the roster and the card key received", id, out)
	}
	for _, f := range []string{enroll.GossipKeysFile, enroll.CardKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s of %s: %v, mode %v; want it written mode 0600", f, id, err, fi.Mode().Perm())
		}
	}
	var err error
	if tl.st, err = enroll.Load(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("agent.toml", []byte("listen = \"127.0.0.1:0\"\nstate_dir = \""+tl.state+"\"\n"+
		"[peers]\nenabled = true\nbind = \""+tl.addr+"\"\nquery_threshold = 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	tune := &wireTuning{feedEvery: 200 * time.Millisecond, peers: agenttest.FastPeers}
	if tl.w, err = openWiring(ctx, cfg, slog.New(slog.DiscardHandler), "test", tune); err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	var runCtx context.Context
	runCtx, tl.stop = context.WithCancel(ctx)
	tl.w.start(runCtx)
	t.Cleanup(func() {
		tl.stop()
		if err := tl.w.close(context.Background()); err != nil {
			t.Errorf("close %s: %v", id, err)
		}
	})
	return tl
}

// announce broadcasts an offline redeem of tl's, as its checkout would
// after the journal recorded it.
func (tl *rosterTill) announce(t *testing.T, seq uint64) loyalty.OpID {
	t.Helper()
	id, err := loyalty.NewOpID(time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var card loyalty.CardHash
	copy(card[:], "roster-test-card")
	op := &loyalty.Op{ID: id, Kind: loyalty.OpRedeem, Store: "S1", Terminal: tl.id, Epoch: 1, Seq: seq, WallTime: time.Now(),
		Card: card, Points: -5, Offline: true}
	if err := tl.w.peers.P.Broadcast(context.Background(), op); err != nil {
		t.Fatalf("%s announces: %v", tl.id, err)
	}
	return id
}

// hasPeerOp reports whether tl's journal recorded op from another till.
func (tl *rosterTill) hasPeerOp(t *testing.T, op loyalty.OpID) bool {
	var card loyalty.CardHash
	copy(card[:], "roster-test-card")
	rs, err := tl.w.journal.PeerRedeems(context.Background(), card)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.ID == op {
			return true
		}
	}
	return false
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Invariant 4 needs every till to trust exactly its store's tills: a till
// enrolled after the first one is learned by the first from GET
// /v1/roster without a restart; a gossip key rotation reaches both tills
// and their redeems keep flowing across the switch; a revoked till stops
// being trusted; and a roster that is forged, unsigned or replayed older
// is refused (invariant 6).
func TestStoreRosterAndKeyringFollowTheCloud(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "ledger.db")
	cl := startCloud(t, nil, "--db", db, "--program", "acme")

	t1 := enrollTill(t, ctx, cl.url, db, "T1", "127.0.0.41")
	v1 := t1.w.peers.RosterVersion()
	firstRoster := bytes.Clone(t1.st.Roster.Raw)
	t2 := enrollTill(t, ctx, cl.url, db, "T2", "127.0.0.42")

	// T2 knows T1 from its enrollment and joins it; T1 learns T2 from the cloud.
	waitUntil(t, 20*time.Second, "T1 learns T2 from /v1/roster", func() bool {
		k, ok := t1.w.peers.P.Roster().Key("T2")
		return ok && k.Equal(t2.st.Key.Public().(ed25519.PublicKey))
	})
	if v := t1.w.peers.RosterVersion(); v <= v1 {
		t.Errorf("T1's roster version %d after T2 enrolled, want more than %d", v, v1)
	}
	waitUntil(t, 20*time.Second, "T1 and T2 see each other alive", func() bool {
		return t1.w.peers.P.AlivePeers() == 1 && t2.w.peers.P.AlivePeers() == 1
	})
	op := t2.announce(t, 1)
	waitUntil(t, 10*time.Second, "T1 records T2's offline redeem", func() bool { return t1.hasPeerOp(t, op) })
	if st := t1.w.agent.Status(); len(st.Peers) != 1 || st.Peers[0].Terminal != "T2" || st.Peers[0].Status != "alive" {
		t.Errorf("T1's /v1/status peers: %+v, want T2 alive", st.Peers)
	}

	// Rotation: a new primary reaches both tills, gossip keeps flowing.
	oldKey := t1.w.peers.P.Keys()[0]
	if code, out, errOut := run(t, "cloud", "rotate-gossip-key", "--db", db, "--store", "S1"); code != 0 || !strings.Contains(out, "new primary gossip key") {
		t.Fatalf("rotate-gossip-key: %d %q %q", code, out, errOut)
	}
	for _, tl := range []*rosterTill{t1, t2} {
		waitUntil(t, 30*time.Second, tl.id+" encrypts with the new key", func() bool {
			keys := tl.w.peers.P.Keys()
			return len(keys) == 2 && !bytes.Equal(keys[0], oldKey) && bytes.Equal(keys[1], oldKey)
		})
	}
	op = t1.announce(t, 1)
	waitUntil(t, 10*time.Second, "T2 records T1's redeem after the switch", func() bool { return t2.hasPeerOp(t, op) })
	if code, _, errOut := run(t, "cloud", "rotate-gossip-key", "--db", db, "--store", "S1", "--finish"); code != 0 {
		t.Fatalf("rotate-gossip-key --finish: %d %q", code, errOut)
	}
	for _, tl := range []*rosterTill{t1, t2} {
		waitUntil(t, 30*time.Second, tl.id+" drops the old key", func() bool { return len(tl.w.peers.P.Keys()) == 1 })
	}
	op = t2.announce(t, 2)
	waitUntil(t, 10*time.Second, "T1 records T2's redeem after the old key is gone", func() bool { return t1.hasPeerOp(t, op) })
	waitUntil(t, 10*time.Second, "T1 keeps the finished keyring for its next start", func() bool {
		st, err := enroll.Load(filepath.Join(t1.state, "enroll"))
		if err != nil {
			t.Fatal(err)
		}
		return len(st.Roster.GossipKeys) == 1 && bytes.Equal(st.Roster.GossipKeys[0], t1.w.peers.P.Keys()[0])
	})

	// A forged, an unsigned and a replayed older roster are refused; T1 keeps its roster.
	_, forgeKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := batch.NewSigner(batch.CloudSigner, "acme", forgeKey)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := signer.SealRoster(&batch.RosterDoc{Store: "S1", Version: 1 << 40, Issued: time.Now(), Terminal: "T1",
		Terminals: []batch.RosterTerminal{{ID: "T1", PublicKey: t1.st.Key.Public().(ed25519.PublicKey)}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"forged", forged, batch.ErrSignature},
		{"unsigned", []byte(`{"store":"S1","terminals":[]}`), batch.ErrMalformed},
		{"replayed older", firstRoster, enroll.ErrStaleRoster},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", batch.ContentType)
			_, _ = w.Write(tc.body)
		}))
		before := t1.w.peers.RosterVersion()
		err := t1.w.peers.RefreshRoster(ctx, cloudRosterAt(t1.st, srv.URL))
		srv.Close()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s roster: got %v, want %v", tc.name, err, tc.want)
		}
		// The till's own refresh from the real cloud runs meanwhile and may
		// move the version on; a refused roster never moves it back, nor to
		// the forged one's.
		if got := t1.w.peers.RosterVersion(); got < before || got >= 1<<40 {
			t.Errorf("%s roster moved T1's roster version from %d to %d", tc.name, before, got)
		}
	}
	if _, ok := t1.w.peers.P.Roster().Key("T2"); !ok {
		t.Fatalf("a refused roster changed T1's roster")
	}

	// Revoking T2 drops it from T1's roster: its redeems stop counting.
	if code, _, errOut := run(t, "cloud", "revoke", "--db", db, "--terminal", "T2"); code != 0 {
		t.Fatalf("revoke: %d %s", code, errOut)
	}
	waitUntil(t, 20*time.Second, "T1 drops revoked T2", func() bool { _, ok := t1.w.peers.P.Roster().Key("T2"); return !ok })
	rejected := t1.w.peers.P.Stats().Rejected
	op = t2.announce(t, 3)
	waitUntil(t, 10*time.Second, "T1 rejects the revoked till's redeem", func() bool { return t1.w.peers.P.Stats().Rejected > rejected })
	if t1.hasPeerOp(t, op) {
		t.Errorf("T1 recorded a redeem of revoked T2")
	}
}

// cloudRosterAt is T's roster source pointed at another server.
func cloudRosterAt(st *enroll.State, url string) rosterAt { return rosterAt{st: st, url: url} }

type rosterAt struct {
	st  *enroll.State
	url string
}

func (r rosterAt) FetchRoster(ctx context.Context, have uint64) (*enroll.Roster, error) {
	return r.st.FetchRoster(ctx, http.DefaultClient, r.url, have)
}

func (r rosterAt) SaveRoster(*enroll.Roster) error {
	return fmt.Errorf("a refused roster must not be saved")
}

// 'tillpoint enroll --show' prints what another till's static roster
// needs, nothing secret; --check-config names a [peers] table that
// contradicts the roster and keyring the cloud handed out.
func TestEnrollShowAndCheckConfigConflicts(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "ledger.db")
	cl := startCloud(t, nil, "--db", db, "--program", "acme")
	state := filepath.Join(dir, "state")
	enrollDir := filepath.Join(state, "enroll")
	enrollT1(t, cl, db, enrollDir, "--advertise", "10.1.2.3:7946")
	st, err := enroll.Load(enrollDir)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "enroll", "--show", "--dir", enrollDir)
	pub := base64Std(st.Key.Public().(ed25519.PublicKey))
	if code != 0 || !strings.Contains(out, "terminal    T1") || !strings.Contains(out, "public_key = \""+pub+"\"") || !strings.Contains(out, "address = \"10.1.2.3:7946\"") {
		t.Errorf("enroll --show: %d %q %q; want T1, its public key and a [[peers.roster]] entry with its address", code, out, errOut)
	}
	for _, k := range st.Roster.GossipKeys {
		if strings.Contains(out, base64Std(k)) {
			t.Errorf("enroll --show printed the store's gossip key")
		}
	}

	base := "listen = \"127.0.0.1:0\"\nstate_dir = \"" + state + "\"\n[peers]\nenabled = true\nbind = \"127.0.0.1:0\"\n"
	cfgPath := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfgPath, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "agent", "--check-config", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "the cloud's roster (version") || !strings.Contains(out, "the cloud's gossip keyring") {
		t.Errorf("check-config with the cloud's roster: %d %q %q; want 0 and the cloud named as the source", code, out, errOut)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(base64Std(bytes.Repeat([]byte{1}, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	conflicting := base + "gossip_key_file = \"" + keyFile + "\"\n[[peers.roster]]\nterminal = \"T1\"\npublic_key = \"" +
		base64Std(other.Public().(ed25519.PublicKey)) + "\"\n"
	if err := os.WriteFile(cfgPath, []byte(conflicting), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "agent", "--check-config", "--config", cfgPath)
	for _, want := range []string{"CONFLICT   peers.roster lists 1 tills and overrides the cloud's roster", "another public key for till T1", "gossip_key_file holds another key"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config with a conflicting [peers]: output %q lacks %q", out, want)
		}
	}
	if code != 1 || !strings.Contains(errOut, "conflicts with the store roster") {
		t.Errorf("check-config with a conflicting [peers]: %d %q; want 1 and the conflict named", code, errOut)
	}
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// A till enrolled before the cloud handed out rosters fetches its roster
// and keyring when its agent starts with store peers on, and keeps them.
func TestAgentFetchesTheRosterAnOlderEnrollmentLacks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "ledger.db")
	cl := startCloud(t, nil, "--db", db, "--program", "acme")
	state := filepath.Join(dir, "state")
	enrollDir := filepath.Join(state, "enroll")
	enrollT1(t, cl, db, enrollDir)
	for _, f := range []string{enroll.RosterFile, enroll.GossipKeysFile} {
		if err := os.Remove(filepath.Join(enrollDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load("agent.toml", []byte("listen = \"127.0.0.1:0\"\nstate_dir = \""+state+"\"\n[peers]\nenabled = true\nbind = \"127.0.0.1:0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := openWiring(ctx, cfg, slog.New(slog.DiscardHandler), "test", nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer w.close(ctx)
	if w.peers.From != (agent.PeersSource{Roster: agent.SourceCloud, Keys: agent.SourceCloud}) {
		t.Errorf("peers source %+v, want the cloud's roster and keyring", w.peers.From)
	}
	st, err := enroll.Load(enrollDir)
	if err != nil || st.Roster == nil || len(st.Roster.GossipKeys) != 1 {
		t.Errorf("after start: %v; want the roster and one gossip key kept in the enrollment directory", err)
	}
}

// --check-config refuses store peers that would have neither a roster nor
// a gossip key: not enrolled and nothing in [peers].
func TestCheckConfigRefusesPeersWithoutARoster(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(cfgPath, []byte("state_dir = \""+dir+"\"\n[peers]\nenabled = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "agent", "--check-config", "--config", cfgPath)
	if code != 1 || !strings.Contains(errOut, "no store roster: enroll the till") {
		t.Errorf("check-config: %d %q; want 1 saying to enroll or list the roster", code, errOut)
	}
}
