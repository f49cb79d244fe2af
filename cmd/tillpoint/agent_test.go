package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

func writeAgentConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "card.key"), []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.toml")
	doc := "listen = \"127.0.0.1:0\"\nstate_dir = \"" + dir + "/state\"\nterminal = \"T1\"\nstore = \"S1\"\n" +
		"[cloud]\ncard_key_file = \"" + dir + "/card.key\"\n" + extra
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAgentCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeAgentConfig(t, dir, "[printer]\npath = \"tcp://127.0.0.1:9100\"\nwidth = 32\n")
	code, out, errOut := run(t, "agent", "--check-config", "--config", good)
	if code != 0 || !strings.Contains(out, "ok") || !strings.Contains(out, "32 columns, cp858") {
		t.Errorf("good config: got %d %q %q, want 0 and a summary", code, out, errOut)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("listen = \"127.0.0.1:7700\"\n\n[printer]\nusb = \"04b8:0202\"\nwidht = 42\n"), 0o600)
	code, _, errOut = run(t, "agent", "--check-config", "--config", bad)
	if code != 1 || !strings.Contains(errOut, "bad.toml:5: printer.widht: unknown key") {
		t.Errorf("bad config: got %d %q, want 1 naming line 5 and printer.widht", code, errOut)
	}
	code, _, errOut = run(t, "agent", "--check-config", "--config", good, "--listen", "nowhere")
	if code != 1 || !strings.Contains(errOut, "listen") {
		t.Errorf("bad flag value: got %d %q, want 1 naming listen", code, errOut)
	}
	code, _, errOut = run(t, "agent", "--config", filepath.Join(dir, "missing.toml"))
	if code != 1 || !strings.Contains(errOut, "pass --config FILE") {
		t.Errorf("missing config: got %d %q", code, errOut)
	}
}

// The real command under a fake systemd: READY once it serves, RELOADING
// and READY again on SIGHUP, STOPPING and exit 0 on shutdown.
func TestAgentServesAndNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	// A scanner matched by a USB ID nobody plugged in: the till starts
	// without it and says so.
	cfgPath := writeAgentConfig(t, dir, "[[scanner]]\nusb = \"0c2e:0b61\"\n[[nfc]]\nreader = \"ACR122\"\n")
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	next := func() string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 1024)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	var out, errOut syncbuf.Buffer
	m := &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string {
			if k == "NOTIFY_SOCKET" {
				return sock
			}
			return ""
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, []string{"agent", "--config", cfgPath, "--log-format", "text"}) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("agent did not stop")
		}
	}()

	ready := next()
	if !strings.HasPrefix(ready, "READY=1\nSTATUS=serving on http://127.0.0.1:") {
		t.Fatalf("first notification: got %q, want READY with the address", ready)
	}
	url := strings.TrimPrefix(ready, "READY=1\nSTATUS=serving on ")
	type status struct {
		Terminal, Version string
		Devices           []struct{ Kind, Code, Reason string }
	}
	scannerMissing := func(st status) bool {
		for _, d := range st.Devices {
			if d.Kind == "scanner" && d.Code == "disconnected" && strings.Contains(d.Reason, "not attached") {
				return true
			}
		}
		return false
	}
	// Device health reaches the status through the device bus, after
	// READY: poll for it with a deadline.
	var st status
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(url + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		st = status{}
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if scannerMissing(st) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Terminal != "T1" {
		t.Errorf("status: got terminal %q, want T1", st.Terminal)
	}
	if !scannerMissing(st) {
		t.Errorf("status devices: got %+v, want the unplugged scanner reported", st.Devices)
	}
	for _, path := range []string{"/", "/metrics", "/v1/openapi.json"} {
		resp, err := http.Get(url + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s: %v %v", path, err, resp)
		} else {
			resp.Body.Close()
		}
	}

	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := next(); !strings.HasPrefix(got, "RELOADING=1") {
		t.Errorf("after SIGHUP: got %q, want RELOADING", got)
	}
	if got := next(); !strings.HasPrefix(got, "READY=1") {
		t.Errorf("after reload: got %q, want READY", got)
	}

	cancel()
	if got := next(); !strings.HasPrefix(got, "STOPPING=1") {
		t.Errorf("on shutdown: got %q, want STOPPING", got)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code: got %d, want 0; stderr:\n%s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop")
	}
	for _, line := range strings.Split(errOut.String(), "\n") {
		if strings.Contains(line, "level=ERROR") && !strings.Contains(line, "device not attached") {
			t.Errorf("unexpected error logged: %s", line)
		}
	}
	done <- 0 // for the deferred wait
}

// Store peers sign what they announce with the terminal's enrollment key:
// enabling them on a till that is not enrolled is refused at start, saying
// what to do, rather than gossiping unsigned.
func TestAgentPeersNeedEnrollment(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(key, []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeAgentConfig(t, dir, "[peers]\nenabled = true\nbind = \"127.0.0.1:0\"\ngossip_key_file = \""+key+"\"\n"+
		"[[peers.roster]]\nterminal = \"T1\"\npublic_key = \"6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\"\n")
	code, out, errOut := run(t, "agent", "--check-config", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "peers      on, bind 127.0.0.1:0, 1 tills in agent.toml's roster, gossip key from "+key) {
		t.Errorf("check-config: got %d %q %q, want 0 and the peers summary", code, out, errOut)
	}
	code, _, errOut = run(t, "agent", "--config", cfgPath)
	if code != 1 || !strings.Contains(errOut, "run 'tillpoint enroll' first") {
		t.Errorf("got %d %q, want 1 saying to enroll first", code, errOut)
	}
}

// An enrolled till with [peers] enabled joins its store cluster with its
// enrollment key: the roster's key for it must be that key, serf runs from
// start to close, and its own member is alive while /v1/status lists no
// other till.
func TestEnrolledAgentJoinsStorePeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "ledger.db")
	cl := startCloud(t, nil, "--db", db, "--program", "acme")
	state := filepath.Join(dir, "state")
	enrollT1(t, cl, db, filepath.Join(state, "enroll"))
	st, err := enroll.Load(filepath.Join(state, "enroll"))
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	pub := base64.StdEncoding.EncodeToString(st.Key.Public().(ed25519.PublicKey))
	cfg, err := config.Load("agent.toml", []byte("listen = \"127.0.0.1:0\"\nstate_dir = \""+state+"\"\n"+
		"[cloud]\ncard_key_file = \""+writeCardKey(t, dir)+"\"\n"+
		"[peers]\nenabled = true\nbind = \"127.0.0.1:0\"\ngossip_key_file = \""+key+"\"\n"+
		"[[peers.roster]]\nterminal = \"T1\"\npublic_key = \""+pub+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := openWiring(ctx, cfg, slog.New(slog.DiscardHandler), "test", nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if w.peers == nil {
		w.close(ctx)
		t.Fatal("got no store peers with [peers] enabled")
	}
	runCtx, stop := context.WithCancel(ctx)
	w.start(runCtx)
	ms, err := w.peers.P.Members()
	if err != nil || len(ms) != 1 || !ms[0].Self || ms[0].Status != "alive" || ms[0].Name != "T1" {
		t.Errorf("members: got %+v, %v; want T1 itself, alive", ms, err)
	}
	if ps := w.agent.Status().Peers; len(ps) != 0 {
		t.Errorf("status peers: got %+v, want none (a store of one till)", ps)
	}
	stop()
	if err := w.close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := w.peers.P.Members(); err == nil {
		t.Errorf("members after close: got no error, want the cluster left")
	}
}

func writeCardKey(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "card.key")
	if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
