package e2e_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
	"github.com/tillpoint/tillpoint/hil-tests/hil"
	"github.com/tillpoint/tillpoint/hil-tests/printeremu"
	"github.com/tillpoint/tillpoint/hil-tests/ptypair"
	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// till is one terminal of the store with its devices.
type till struct {
	term    *harness.Terminal
	proxy   *harness.Proxy // between its agent and the cloud
	agent   *harness.Agent
	scanner *ptypair.Pair       // nil: none; the test writes on A, the agent reads B
	scanEnd *os.File            // the scanner's end A
	printer *printeremu.Printer // nil: none
}

// tillOpts says which devices a till gets.
type tillOpts struct {
	scanner       bool
	serialPrinter bool
	tcpPrinter    bool
	nfcReader     string
	redeemCap     int
	// peers joins the till to its store's serf cluster (offline/peers),
	// with every till of the store in its roster.
	peers bool
}

// store is a cloud and the tills of one store.
type store struct {
	cloud *harness.Cloud
	tills []*till
}

// newStore starts a cloud and one till per opts, each enrolled through its
// own proxy and running its agent.
func newStore(t *testing.T, opts ...tillOpts) *store {
	t.Helper()
	s := &store{cloud: harness.StartCloud(t)}
	// Every till enrolls first, so that the store's roster (each till's
	// gossip address and enrolled public key) is known before any starts.
	for i := range opts {
		tl := &till{}
		tl.proxy = harness.NewProxy(t, s.cloud.Addr)
		tl.term = s.cloud.Enroll(t, tl.proxy.URL, "store-1", fmt.Sprintf("till-%d", i+1))
		s.tills = append(s.tills, tl)
	}
	roster := peersRoster(t, s.tills)
	for i, o := range opts {
		tl := s.tills[i]
		cfg := harness.AgentConfig{Terminal: tl.term, CloudURL: tl.proxy.URL, NFCReader: o.nfcReader, RedeemCap: o.redeemCap}
		if o.peers {
			cfg.Extra = roster.config(tl.term.ID)
		}
		if o.scanner {
			tl.scanner = ptypair.NewIn(t, devDir(t))
			cfg.Scanner = tl.scanner.B
			f, err := tl.scanner.OpenA()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			tl.scanEnd = f
		}
		switch {
		case o.serialPrinter:
			tl.printer = printeremu.New()
			pair := ptypair.NewIn(t, devDir(t))
			f, err := pair.OpenA()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = tl.printer.Serve(ctx, f) }()
			t.Cleanup(func() { cancel(); f.Close(); <-done })
			cfg.Printer = pair.B
		case o.tcpPrinter:
			tl.printer = printeremu.New()
			addr, err := tl.printer.ListenTCP("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tl.printer.Close() })
			cfg.Printer = "tcp://" + addr
		}
		tl.agent = harness.StartAgent(t, cfg)
	}
	return s
}

// roster is a store's serf roster: a gossip address per till (a free port
// on a 127.0.0.x address of its own) and its enrolled public key, and the
// store's gossip key file.
type roster struct {
	keyFile string
	addr    map[string]string
	entries string
}

func peersRoster(t *testing.T, tills []*till) roster {
	t.Helper()
	r := roster{addr: map[string]string{}, keyFile: filepath.Join(t.TempDir(), "gossip.key")}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, tl := range tills {
		host := fmt.Sprintf("127.0.0.%d", 40+i)
		l, err := net.Listen("tcp", host+":0")
		if err != nil {
			t.Fatalf("pick a gossip port on %s: %v", host, err)
		}
		r.addr[tl.term.ID] = l.Addr().String()
		l.Close()
		pub := tl.term.State(t).Key.Public().(ed25519.PublicKey)
		fmt.Fprintf(&b, "\n[[peers.roster]]\nterminal = %q\naddress = %q\npublic_key = %q\n", tl.term.ID, r.addr[tl.term.ID], base64.StdEncoding.EncodeToString(pub))
	}
	r.entries = b.String()
	return r
}

// config is the [peers] table of one till's agent.toml.
func (r roster) config(terminal string) string {
	return fmt.Sprintf("\n[peers]\nenabled = true\nbind = %q\ngossip_key_file = %q\nisolated_redeem_cap = 100\nquery_threshold = 0\n", r.addr[terminal], r.keyFile) + r.entries
}

// scan writes a barcode on the scanner's cable, CR-terminated as configured.
func (tl *till) scan(t *testing.T, code string) {
	t.Helper()
	if _, err := tl.scanEnd.Write([]byte(code + "\r")); err != nil {
		t.Fatalf("write scan: %v", err)
	}
}

// post sends a POST with a fresh idempotency key and returns the reply.
func (tl *till) post(ctx context.Context, t *testing.T, path, key string, body any) *harness.Reply {
	t.Helper()
	r, err := tl.agent.Do(ctx, http.MethodPost, path, key, body)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return r
}

// requireRules waits until the till holds the cloud's rules (harness
// clouds publish harness.Rules at start); a build without the feed that
// brings them is a GAP.
func requireRules(ctx context.Context, t *testing.T, tl *till) {
	t.Helper()
	requireUplink(t, tl)
	harness.Eventually(t, 20*time.Second, "till "+tl.term.ID+" holds the cloud's rules", func() (bool, string) {
		st, err := tl.agent.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.Rules > 0, fmt.Sprintf("rules version %d", st.Rules)
	})
}

// requireUplink names the gap when the agent binary does not sync.
func requireUplink(t *testing.T, tl *till) {
	t.Helper()
	if strings.Contains(tl.agent.Proc.Output(), "no uplink yet") {
		harness.Gap(t, "the agent binary has no uplink: cloud.url is set but nothing ships the journal (cmd/tillpoint/agentwire.go)")
	}
}

// requireNFC names the gap when the agent binary has no NFC driver.
func requireNFC(t *testing.T, tl *till) {
	t.Helper()
	if strings.Contains(tl.agent.Proc.Output(), "no NFC driver yet") {
		harness.Gap(t, "the agent binary has no NFC driver wired: [[nfc]] readers are ignored (cmd/tillpoint/agentwire.go)")
	}
}

// receipts decodes what the till's printer printed.
func (tl *till) receipts(t *testing.T) []*escpos.Doc {
	t.Helper()
	docs, err := tl.printer.Printed()
	if err != nil {
		t.Fatalf("decode printed receipts: %v", err)
	}
	return docs
}

// waitReceipts waits until the printer printed n jobs.
func (tl *till) waitReceipts(t *testing.T, n int, d time.Duration) []*escpos.Doc {
	t.Helper()
	if !tl.printer.WaitFor(d, func(p *printeremu.Printer) bool { return len(p.Jobs()) >= n }) {
		t.Fatalf("printer: got %d receipts within %v, want %d", len(tl.printer.Jobs()), d, n)
	}
	return tl.receipts(t)
}

// devDir is a fresh directory under /dev/shm: the agent takes serial ports
// only under /dev/, and socat's links must live somewhere it accepts.
func devDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "tillpoint-hil-")
	if err != nil {
		hil.Missing(t, fmt.Sprintf("no writable /dev/shm for the serial ports' links (%v)", err))
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
