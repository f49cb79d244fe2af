package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/config"
)

func TestPackagedConfigLoads(t *testing.T) {
	c, err := config.ReadFile(filepath.Join("..", "..", "packaging", "agent.toml"))
	if err != nil {
		t.Fatalf("packaging/agent.toml: %v", err)
	}
	if c.Printer == nil || c.Printer.Width != 42 || c.Printer.CodePage != "cp858" {
		t.Errorf("printer: got %+v, want width 42 and cp858", c.Printer)
	}
	if len(c.Scanners) != 1 || c.Scanners[0].USB != "0c2e:0b61" {
		t.Errorf("scanners: got %+v, want one matched by 0c2e:0b61", c.Scanners)
	}
}

func TestEmptyFileGivesDefaults(t *testing.T) {
	c, err := config.Load("agent.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7700" {
		t.Errorf("listen: got %q, want 127.0.0.1:7700", c.Listen)
	}
	if c.Offline.MaxSnapshotAge.D() != 72*time.Hour || c.Session.IdleTimeout.D() != 2*time.Minute {
		t.Errorf("durations: got %s and %s, want 72h and 2m", c.Offline.MaxSnapshotAge, c.Session.IdleTimeout)
	}
	if c.Printer != nil {
		t.Errorf("printer: got %+v, want none when the file has no [printer]", c.Printer)
	}
	if got := c.EnrollmentDir(); got != "/var/lib/tillpoint/enroll" {
		t.Errorf("enrollment dir: got %q", got)
	}
}

func TestPrinterTableTakesDefaultsForMissingKeys(t *testing.T) {
	c, err := config.Load("agent.toml", []byte("[printer]\npath = \"tcp://127.0.0.1:9100\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Printer.Width != 42 || c.Printer.CodePage != "cp858" {
		t.Errorf("got width %d code page %q, want 42 and cp858", c.Printer.Width, c.Printer.CodePage)
	}
}

// A bad file is reported with the key and its line, and nothing is returned
// (the agent never starts half configured).
func TestBadConfigNamesKeyAndLine(t *testing.T) {
	cases := []struct {
		name, doc string
		line      int
		key       string
		msg       string
	}{
		{"unknown top-level key", "listen = \"127.0.0.1:7700\"\nlisten_adress = \"x\"\n", 2, "listen_adress", "unknown key"},
		{"unknown key in table", "[printer]\nusb = \"04b8:0202\"\n\nwidht = 42\n", 4, "printer.widht", "unknown key"},
		{"unknown key in array table", "[[scanner]]\nusb = \"0c2e:0b61\"\n[[scanner]]\npath = \"/dev/ttyACM1\"\nbaudrate = 9600\n", 5, "scanner.baudrate", "unknown key"},
		{"wrong type", "[printer]\nusb = \"04b8:0202\"\nwidth = \"wide\"\n", 3, "printer.width", ""},
		{"bad duration", "[session]\nidle_timeout = \"2 minutes\"\n", 2, "", "not a duration"},
		{"width out of range", "[printer]\nusb = \"04b8:0202\"\nwidth = 40\n", 3, "printer.width", "40 columns is not supported"},
		{"bad usb id", "[[scanner]]\npath = \"/dev/ttyACM0\"\n[[scanner]]\nname = \"b\"\nusb = \"honeywell\"\n", 5, "scanner[1].usb", "not VID:PID"},
		{"device without match", "[printer]\nwidth = 32\n", 1, "printer", "needs usb"},
		{"bad listen", "\n\nlisten = \"7700\"\n", 3, "listen", "not host:port"},
		{"bad cloud url", "[cloud]\nurl = \"ftp://x\"\n", 2, "cloud.url", "not an http(s) URL"},
		{"syntax error", "[printer\nwidth = 42\n", 1, "", ""},
		{"scanner on the network", "[[scanner]]\npath = \"tcp://10.0.0.1:9100\"\n", 2, "scanner[0].path", "only a printer"},
		{"unknown key in peers", "[peers]\nenabled = false\nbind_addr = \"0.0.0.0:7946\"\n", 3, "peers.bind_addr", "unknown key"},
		{"unknown key in peers roster", "[[peers.roster]]\nterminal = \"till-1\"\npubkey = \"x\"\n", 3, "peers.roster.pubkey", "unknown key"},
		{"bad peer public key", "[peers]\n[[peers.roster]]\nterminal = \"till-1\"\npublic_key = \"" + testPub + "\"\n[[peers.roster]]\nterminal = \"till-2\"\npublic_key = \"c2hvcnQ=\"\n", 7, "peers.roster[1].public_key", "5 bytes, want 32"},
		{"small-order peer public key", "[[peers.roster]]\nterminal = \"till-1\"\npublic_key = \"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n", 3, "peers.roster[0].public_key", "small order"},
		{"peer address not an IP", "[[peers.roster]]\nterminal = \"till-1\"\naddress = \"till1.local:7946\"\npublic_key = \"" + testPub + "\"\n", 3, "peers.roster[0].address", "not an IP address"},
		{"pull interval too short", "[sync]\n\npull_interval = \"1s\"\n", 3, "sync.pull_interval", "use 5s to 24h"},
		{"max backoff too long", "[sync]\nmax_backoff = \"2h\"\n", 2, "sync.max_backoff", "use 1s to 1h"},
		{"sync key misspelt", "[sync]\npull_every = \"1m\"\n", 2, "sync.pull_every", "unknown key"},
		{"grab on a serial scanner", "[[scanner]]\nkind = \"serial\"\npath = \"/dev/ttyACM0\"\ngrab = false\n", 4, "scanner[0].grab", "only a hid"},
		{"hid scanner on a tty", "[[scanner]]\nkind = \"hid\"\npath = \"/dev/ttyACM0\"\n", 3, "scanner[0].path", "an input device"},
		{"peers bind without port", "[peers]\nenabled = true\nbind = \"10.0.0.5\"\ngossip_key_file = \"/k\"\n[[peers.roster]]\nterminal = \"till-1\"\npublic_key = \"" + testPub + "\"\n", 3, "peers.bind", "not host:port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := config.Load("agent.toml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("got config %+v, want an error", c)
			}
			if c != nil {
				t.Errorf("got a config with the error, want none")
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("got %T, want a *config.Error", err)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("got %v, want problems", err)
			}
			p := ce.Problems[0]
			if p.Line != tc.line {
				t.Errorf("line: got %d, want %d (%v)", p.Line, tc.line, err)
			}
			if tc.key != "" && p.Key != tc.key {
				t.Errorf("key: got %q, want %q (%v)", p.Key, tc.key, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message: got %q, want it to contain %q", err, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "agent.toml:") {
				t.Errorf("message: got %q, want it to start with the file name", err)
			}
		})
	}
}

// testPub is a valid base64 Ed25519 public key (32 zero bytes).
const testPub = "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=" // ed25519.NewKeyFromSeed(32 bytes of 7)

// Peers stay off unless a file turns them on, so existing configurations
// are unchanged; an enabled table reads back whole.
func TestPeersTableDefaultsOffAndReadsRoster(t *testing.T) {
	c, err := config.Load("agent.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Peers.Enabled || c.Peers.Bind != "0.0.0.0:7946" || c.Peers.IsolatedRedeemCap != 100 || c.Peers.QueryThreshold != 100 {
		t.Errorf("defaults: got %+v, want disabled, 0.0.0.0:7946, cap 100, threshold 100", c.Peers)
	}
	if got := c.PeersSnapshotPath(); got != "/var/lib/tillpoint/serf.snapshot" {
		t.Errorf("snapshot path: got %q, want it in the state directory", got)
	}
	doc := "state_dir = \"/srv/tp\"\n[peers]\nenabled = true\nbind = \"192.168.1.21:7946\"\ngossip_key_file = \"/etc/tillpoint/gossip.key\"\n" +
		"isolated_redeem_cap = 40\nquery_threshold = 0\n" +
		"[[peers.roster]]\nterminal = \"till-1\"\naddress = \"192.168.1.21:7946\"\npublic_key = \"" + testPub + "\"\n" +
		"[[peers.roster]]\nterminal = \"till-2\"\naddress = \"192.168.1.22:7946\"\npublic_key = \"" + testPub + "\"\n"
	c, err = config.Load("agent.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Peers
	if !p.Enabled || p.IsolatedRedeemCap != 40 || p.QueryThreshold != 0 || len(p.Roster) != 2 || p.Roster[1].Address != "192.168.1.22:7946" {
		t.Errorf("got %+v, want enabled, cap 40, threshold 0, two tills", p)
	}
	if got := c.PeersSnapshotPath(); got != "/srv/tp/serf.snapshot" {
		t.Errorf("snapshot path: got %q, want /srv/tp/serf.snapshot", got)
	}
	if k, err := p.Roster[0].PublicKeyBytes(); err != nil || len(k) != 32 {
		t.Errorf("public key: got %d bytes, %v; want 32", len(k), err)
	}
}

// [sync] has defaults a file may leave out, and reads back what it sets;
// a hid scanner is grabbed unless the file says grab = false.
func TestSyncAndHIDScannerSettings(t *testing.T) {
	c, err := config.Load("agent.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sync.PullInterval.D() != config.DefaultPullInterval || c.Sync.MaxBackoff.D() != config.DefaultMaxBackoff {
		t.Errorf("sync defaults: got %+v, want %s and %s", c.Sync, config.DefaultPullInterval, config.DefaultMaxBackoff)
	}
	doc := "[sync]\npull_interval = \"5m\"\nmax_backoff = \"10s\"\n" +
		"[[scanner]]\nkind = \"hid\"\nusb = \"05e0:1200\"\n[[scanner]]\nkind = \"hid\"\npath = \"/dev/input/event5\"\ngrab = false\nsuffix = \"TAB\"\n"
	if c, err = config.Load("agent.toml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	if c.Sync.PullInterval.D() != 5*time.Minute || c.Sync.MaxBackoff.D() != 10*time.Second {
		t.Errorf("sync: got %+v, want 5m and 10s", c.Sync)
	}
	if len(c.Scanners) != 2 || !c.Scanners[0].Grabs() || c.Scanners[1].Grabs() {
		t.Errorf("scanners: got %+v, want the first grabbed, the second shared", c.Scanners)
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	doc := "[log]\nlevel = \"loud\"\n[printer]\nusb = \"04b8:0202\"\nwidth = 40\ncode_page = \"utf8\"\n"
	_, err := config.Load("agent.toml", []byte(doc))
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *config.Error", err)
	}
	var keys []string
	for _, p := range ce.Problems {
		keys = append(keys, p.Key)
	}
	if got, want := strings.Join(keys, ","), "log.level,printer.width,printer.code_page"; got != want {
		t.Errorf("keys: got %s, want %s", got, want)
	}
}

func TestReadFileMissing(t *testing.T) {
	_, err := config.ReadFile(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a not-exist error", err)
	}
}
