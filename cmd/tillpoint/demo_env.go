package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/agent/api"
	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/agent/screen"
	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/hil-tests/printeremu"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/receipt/escpos"
	"github.com/tillpoint/tillpoint/sync/enroll"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// netCut is the store's network link to the cloud: a TCP proxy that can be
// cut (every connection dropped, new ones refused) and restored.
type netCut struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startNetCut(target string) (*netCut, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	n := &netCut{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	n.wg.Add(1)
	go n.serve()
	return n, nil
}

func (n *netCut) URL() string { return "http://" + n.ln.Addr().String() }

func (n *netCut) serve() {
	defer n.wg.Done()
	for {
		c, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.mu.Lock()
		down := n.down
		n.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", n.target)
		if err != nil {
			c.Close()
			continue
		}
		n.track(c, up)
		n.wg.Add(2)
		go func() { defer n.wg.Done(); io.Copy(up, c); up.Close() }()
		go func() { defer n.wg.Done(); io.Copy(c, up); c.Close() }()
	}
}

func (n *netCut) track(cs ...net.Conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range cs {
		n.conns[c] = struct{}{}
	}
}

// SetDown cuts or restores the link.
func (n *netCut) SetDown(down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = down
	if down {
		for c := range n.conns {
			c.Close()
		}
		clear(n.conns)
	}
}

func (n *netCut) Close() {
	n.ln.Close()
	n.SetDown(true)
	n.wg.Wait()
}

// demoCloud is the central ledger on SQLite in the demo's directory.
type demoCloud struct {
	ledger *sqlstore.Store
	srv    *server.Server
	url    string
}

const demoProgram = "demo-rewards"

// allowance is the cloud's offline escrow in the demo: a card may redeem
// offline all of its balance, at most 100 points, per store.
var demoAllowance = cloud.AllowancePolicy{Percent: 100, MaxPoints: 100, TTL: 24 * time.Hour, OverspendCooldown: 24 * time.Hour}

func startDemoCloud(ctx context.Context, dir string, logger *slog.Logger) (*demoCloud, error) {
	ledger, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "ledger.db"), sqlstore.Options{Allowance: demoAllowance, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("cloud ledger: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		ledger.Close()
		return nil, err
	}
	srv := server.New(ledger, key, demoProgram)
	srv.Addr, srv.Logger = "127.0.0.1:0", logger
	if err := srv.Open(); err != nil {
		ledger.Close()
		return nil, fmt.Errorf("cloud server: %w", err)
	}
	return &demoCloud{ledger: ledger, srv: srv, url: srv.URL()}, nil
}

func (c *demoCloud) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.srv.Close(ctx)
	c.ledger.Close()
}

// demoTerminal is one till: an agent with its API and cashier screen, an
// emulated ESC/POS printer on TCP, and simulated scanner and NFC reader
// that publish on the agent's device bus.
type demoTerminal struct {
	id      string
	w       *wiring
	srv     *api.Server
	printer *printeremu.Printer
	shown   int // receipts printed to the demo's output so far
	nfc     devices.ID
	scanner devices.ID
	client  *http.Client
	keys    int
	acked   []acked // every op a POS was told about
	cancel  context.CancelFunc
}

// acked is an op a POS got a 200 for.
type acked struct {
	terminal string
	op       loyalty.OpID
	kind     string
	points   int64
}

func startTerminal(ctx context.Context, dir, id, store, cloudURL string, cardKey []byte, ledger cloud.Ledger,
	logger *slog.Logger, onOp func(context.Context, loyalty.Op), tweaks ...func(*config.Config, *wireTuning)) (*demoTerminal, error) {
	t := &demoTerminal{id: id, client: &http.Client{Timeout: 10 * time.Second},
		nfc:     devices.ID{Kind: devices.KindNFC, Path: "sim NFC reader " + id},
		scanner: devices.ID{Kind: devices.KindScanner, Path: "sim scanner " + id}}
	state := filepath.Join(dir, id)
	enrollDir := filepath.Join(state, "enroll")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	now := time.Now()
	code, err := server.CreateEnrollCode(ctx, ledger, store, id, now, now.Add(time.Hour))
	if err != nil {
		return nil, fmt.Errorf("enroll code for %s: %w", id, err)
	}
	if _, err := enroll.NewClient().Enroll(ctx, cloudURL, code.Code, enrollDir); err != nil {
		return nil, fmt.Errorf("enroll %s: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(enrollDir, "card.key"), []byte(hex.EncodeToString(cardKey)), 0o600); err != nil {
		return nil, err
	}
	t.printer = printeremu.New()
	var paddr string
	paddr, err = t.printer.ListenTCP("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("printer emulator: %w", err)
	}
	cfg := config.Default()
	cfg.Listen, cfg.StateDir = "127.0.0.1:0", state
	cfg.Cloud.URL, cfg.Cloud.Timeout = cloudURL, config.Duration(2*time.Second)
	cfg.Printer = &config.Printer{Name: "receipt", Path: "tcp://" + paddr, Width: 42, CodePage: "cp858"}
	tune := &wireTuning{
		uplink: func(c *uplink.Config) {
			c.MaxAge, c.Poll = 0, 200*time.Millisecond
			c.MinBackoff, c.MaxBackoff, c.RequestTimeout = 50*time.Millisecond, 400*time.Millisecond, 2*time.Second
		},
		feedEvery: 500 * time.Millisecond,
		syncPoll:  100 * time.Millisecond,
		onOp:      onOp,
	}
	for _, tweak := range tweaks {
		tweak(cfg, tune)
	}
	t.w, err = openWiring(ctx, cfg, logger.With("terminal", id), Version, tune)
	if err != nil {
		t.printer.Close()
		return nil, fmt.Errorf("terminal %s: %w", id, err)
	}
	t.srv = api.NewServer(t.w.agent, cfg.Listen)
	t.srv.Screen, t.srv.Logger = screen.Handler(), logger
	if err := t.srv.Open(); err != nil {
		t.w.close(ctx)
		t.printer.Close()
		return nil, err
	}
	var runCtx context.Context
	runCtx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))
	t.w.start(runCtx)
	return t, nil
}

func (t *demoTerminal) Close(ctx context.Context) error {
	err := t.srv.Close(ctx)
	t.cancel()
	err = errors.Join(err, t.w.close(ctx))
	t.printer.Close()
	return err
}

func (t *demoTerminal) URL() string { return t.srv.URL() }

// tap presents an NFC card on the simulated reader.
func (t *demoTerminal) tap(uid string) {
	b, _ := hex.DecodeString(uid)
	t.w.bus.Publish(devices.Tap{Device: t.nfc, At: time.Now(), UID: b})
}

// scan reads a barcode on the simulated scanner.
func (t *demoTerminal) scan(code string) {
	t.w.bus.Publish(devices.Scan{Device: t.scanner, At: time.Now(), Data: []byte("]E0" + code), Label: code, AIM: "]E0"})
}

// waitSession waits until the card shows on the till.
func (t *demoTerminal) waitSession(ctx context.Context) error {
	return waitFor(ctx, 5*time.Second, "the card to open a session on "+t.id, func() bool { return t.w.agent.Session(ctx).Open })
}

// post is the POS app: a POST with a fresh Idempotency-Key. It returns the
// reply, or the problem the API answered.
func (t *demoTerminal) post(ctx context.Context, path string, body any) (*api.OpReply, *api.Problem, error) {
	t.keys++
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", t.URL()+path, bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("demo-%s-%d-%d", t.id, time.Now().UnixNano(), t.keys))
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var p api.Problem
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, nil, fmt.Errorf("POST %s: %s: %s", path, resp.Status, raw)
		}
		return nil, &p, nil
	}
	var r api.OpReply
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, err
	}
	id, err := loyalty.ParseOpID(r.OpID)
	if err != nil {
		return nil, nil, err
	}
	t.acked = append(t.acked, acked{terminal: t.id, op: id, kind: r.Kind, points: r.Points})
	return &r, nil, nil
}

// receipts waits for n more receipts from the printer and returns them as
// the printer would print them.
func (t *demoTerminal) receipts(ctx context.Context, n int) ([]string, error) {
	want := t.shown + n
	if err := waitFor(ctx, 10*time.Second, fmt.Sprintf("%s's printer to print %d receipt(s)", t.id, n),
		func() bool { return len(t.printer.Jobs()) >= want }); err != nil {
		return nil, err
	}
	jobs := t.printer.Jobs()
	var out []string
	for _, job := range jobs[t.shown:want] {
		doc, err := escpos.Decode(job)
		if err != nil {
			return nil, fmt.Errorf("%s printed bytes that do not decode: %w", t.id, err)
		}
		out = append(out, doc.Text(42))
	}
	t.shown = want
	return out, nil
}

// shipped waits until the terminal has shipped everything and is online.
func (t *demoTerminal) shipped(ctx context.Context) error {
	// The journal is the authority on what is unacknowledged: the uplink's
	// own backlog figure is refreshed lazily and may not count an op
	// appended a moment ago yet.
	err := waitFor(ctx, 20*time.Second, t.id+" to ship its journal", func() bool {
		st, err := t.w.journal.Stats(ctx)
		return err == nil && st.Unacked == 0 && t.w.uplink.State().Online
	})
	if err != nil {
		return fmt.Errorf("%w (uplink: %+v)", err, t.w.uplink.State())
	}
	return nil
}

// refresh pulls the cloud's feeds once.
func (t *demoTerminal) refresh(ctx context.Context) error {
	if err := t.w.feed.Pull(ctx); err != nil {
		return fmt.Errorf("%s: %w", t.id, err)
	}
	t.w.agent.RefreshSync()
	return nil
}

// waitFor polls cond until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", d, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// relayPeerRedeem passes an offline redeem made at one till to the other
// tills' journals, as the store's gossip (offline/peers) does between
// processes.
func relayPeerRedeem(ctx context.Context, op loyalty.Op, to ...*journal.Journal) error {
	if op.Kind != loyalty.OpRedeem || !op.Offline {
		return nil
	}
	r, err := journal.PeerRedeemFromOp(op)
	if err != nil {
		return err
	}
	for _, j := range to {
		if _, err := j.PutPeerRedeem(ctx, r); err != nil {
			return err
		}
	}
	return nil
}
