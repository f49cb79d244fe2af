package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
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
	gossip  string              // its gossip address, IP:PORT; empty without peers
}

// tillOpts says which devices a till gets.
type tillOpts struct {
	scanner       bool
	serialPrinter bool
	tcpPrinter    bool
	nfcReader     string
	redeemCap     int
	// peers joins the till to its store's serf cluster (offline/peers):
	// it enrolls with a gossip address of its own (--advertise) and
	// follows the store roster and keyring the cloud hands out; its
	// agent.toml sets only where to bind and the thresholds.
	peers bool
}

// store is a cloud and the tills of one store.
type store struct {
	cloud *harness.Cloud
	tills []*till
}

// storeID is the store every till of the harness belongs to.
const storeID = "store-1"

// newStore starts a cloud and one till per opts, each enrolled through its
// own proxy and running its agent.
func newStore(t *testing.T, opts ...tillOpts) *store {
	t.Helper()
	s := &store{cloud: harness.StartCloud(t)}
	// Every till enrolls first, so that the store roster each gets at
	// enrollment or at its first refresh already lists the others.
	for _, o := range opts {
		s.tills = append(s.tills, s.enroll(t, o))
	}
	for i, o := range opts {
		s.start(t, s.tills[i], o)
	}
	return s
}

// addTill enrolls one more till of the store and starts it while the
// others run.
func (s *store) addTill(t *testing.T, o tillOpts) *till {
	t.Helper()
	tl := s.enroll(t, o)
	s.tills = append(s.tills, tl)
	s.start(t, tl, o)
	return tl
}

// enroll runs 'tillpoint enroll' for the store's next till through a proxy
// of its own; a till with peers gets a gossip address (a free port on a
// 127.0.0.x address of its own) and advertises it.
func (s *store) enroll(t *testing.T, o tillOpts) *till {
	t.Helper()
	n := len(s.tills) + 1
	tl := &till{proxy: harness.NewProxy(t, s.cloud.Addr)}
	if o.peers {
		host := fmt.Sprintf("127.0.0.%d", 40+n)
		l, err := net.Listen("tcp", host+":0")
		if err != nil {
			t.Fatalf("pick a gossip port on %s: %v", host, err)
		}
		tl.gossip = l.Addr().String()
		l.Close()
	}
	tl.term = s.cloud.EnrollAdvertising(t, tl.proxy.URL, storeID, fmt.Sprintf("till-%d", n), tl.gossip)
	return tl
}

// start writes the till's agent.toml and starts its agent.
func (s *store) start(t *testing.T, tl *till, o tillOpts) {
	t.Helper()
	cfg := harness.AgentConfig{Terminal: tl.term, CloudURL: tl.proxy.URL, NFCReader: o.nfcReader, RedeemCap: o.redeemCap}
	if o.peers {
		// The roster and keyring are the cloud's: pulled with the
		// snapshots, as often as the agent allows.
		cfg.Extra = fmt.Sprintf("\n[sync]\npull_interval = \"5s\"\n\n[peers]\nenabled = true\nbind = %q\nisolated_redeem_cap = 100\nquery_threshold = 0\n", tl.gossip)
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
