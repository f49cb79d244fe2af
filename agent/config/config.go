package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Defaults of the settings a file may leave out.
const (
	DefaultListen          = "127.0.0.1:7700"
	DefaultStateDir        = "/var/lib/tillpoint"
	DefaultMaxSnapshotAge  = 72 * time.Hour
	DefaultRedeemCapPerDay = loyalty.Points(500)
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultCloudTimeout    = 10 * time.Second
	DefaultPrinterWidth    = 42
	DefaultCodePage        = "cp858"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultPullInterval    = 30 * time.Second
	DefaultMaxBackoff      = 30 * time.Second
	// Store peers (offline/peers): the gossip port and the redeem figures.
	DefaultPeersBind              = "0.0.0.0:7946"
	DefaultPeersIsolatedRedeemCap = loyalty.Points(100)
	DefaultPeersQueryThreshold    = loyalty.Points(100)
)

// Config is the whole agent configuration. Its TOML keys are the snake_case
// names in the struct tags; see packaging/agent.toml for a commented example.
type Config struct {
	// Listen is the local API and cashier screen address.
	Listen string `toml:"listen"`
	// Store and Terminal name this till; enrollment files, when present, win.
	Store    string `toml:"store"`
	Terminal string `toml:"terminal"`
	// StateDir holds the journal, the agent's own database and, unless
	// cloud.enrollment_dir says otherwise, the enrollment files.
	StateDir string `toml:"state_dir"`
	// ShutdownTimeout bounds a clean shutdown (in-flight requests and print jobs).
	ShutdownTimeout Duration `toml:"shutdown_timeout"`

	Log      Log         `toml:"log"`
	Cloud    Cloud       `toml:"cloud"`
	Sync     Sync        `toml:"sync"`
	Offline  Offline     `toml:"offline"`
	Session  Session     `toml:"session"`
	Receipt  Receipt     `toml:"receipt"`
	Printer  *Printer    `toml:"printer"`
	Scanners []Scanner   `toml:"scanner"`
	NFC      []NFCReader `toml:"nfc"`
	Peers    Peers       `toml:"peers"`
}

// Peers is the store's gossip of offline redeems (offline/peers): the
// terminals of one store tell each other what they redeem while the cloud
// is unreachable.
type Peers struct {
	// Enabled joins the store's cluster; off by default. It needs an
	// enrolled terminal (its Ed25519 key signs the redeems it announces).
	Enabled bool `toml:"enabled"`
	// Bind is where gossip listens, host:port (UDP and TCP).
	Bind string `toml:"bind"`
	// Advertise is what the other tills dial, host:port, when it differs
	// from bind (a 0.0.0.0 bind, NAT).
	Advertise string `toml:"advertise"`
	// GossipKeyFile holds the store's gossip key: 32 bytes in base64, in a
	// file only the agent's user can read (mode 0600 or 0400). It
	// overrides the keyring the cloud hands out at enrollment (for a store
	// without a cloud); rotations are then not followed.
	GossipKeyFile string `toml:"gossip_key_file"`
	// SnapshotPath is serf's snapshot; default state_dir/serf.snapshot.
	SnapshotPath string `toml:"snapshot_path"`
	// IsolatedRedeemCap is what a card may redeem offline in total while the
	// till reaches neither the cloud nor another till.
	IsolatedRedeemCap loyalty.Points `toml:"isolated_redeem_cap"`
	// QueryThreshold: a redeem of at least this many points asks the other
	// tills first (at most 500 ms); 0 asks for every redeem.
	QueryThreshold loyalty.Points `toml:"query_threshold"`
	// Roster is the store's terminals, written by hand: it overrides the
	// roster the cloud hands out (for a store without a cloud); new and
	// revoked tills are then not followed.
	Roster []PeerTerminal `toml:"roster"`
}

// PeerTerminal is one till of the store in the static roster.
type PeerTerminal struct {
	Terminal string `toml:"terminal"`
	// Address is its gossip address, host:port; empty: it joins us.
	Address string `toml:"address"`
	// PublicKey is its enrollment key, Ed25519, in base64.
	PublicKey string `toml:"public_key"`
}

// PublicKeyBytes decodes the terminal's public key.
func (t PeerTerminal) PublicKeyBytes() (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(t.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("public key is not base64: %w", err)
	}
	if err := loyalty.CheckSigningKey(b); err != nil {
		return nil, fmt.Errorf("public key: %w; copy it from 'tillpoint enroll --show' on that till", err)
	}
	return ed25519.PublicKey(b), nil
}

// PeersSnapshotPath returns peers.snapshot_path or its default in the state directory.
func (c *Config) PeersSnapshotPath() string {
	if c.Peers.SnapshotPath != "" {
		return c.Peers.SnapshotPath
	}
	return strings.TrimRight(c.StateDir, "/") + "/serf.snapshot"
}

// Log says how the agent logs.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // json (production) or text
}

// Cloud is where the journal is shipped.
type Cloud struct {
	URL string `toml:"url"`
	// EnrollmentDir holds the terminal key, the cloud's public key and the
	// store ID written by `tillpoint enroll`; default state_dir/enroll.
	EnrollmentDir string `toml:"enrollment_dir"`
	// CardKeyFile holds the program's card hash key (32 bytes, or 64 hex
	// digits); default enrollment_dir/card.key.
	CardKeyFile string   `toml:"card_key_file"`
	Timeout     Duration `toml:"timeout"`
}

// Sync is how the till keeps in step with the cloud.
type Sync struct {
	// PullInterval is how often the rules and the store's member snapshots
	// are pulled; they are also pulled at once when the link to the cloud
	// comes back after an outage.
	PullInterval Duration `toml:"pull_interval"`
	// MaxBackoff caps the wait between two attempts while the cloud cannot
	// be reached (sending the journal and pulling the feeds): the longest a
	// till stays unaware that the link is back.
	MaxBackoff Duration `toml:"max_backoff"`
}

// Offline is the offline redeem policy (invariant 4).
type Offline struct {
	// MaxSnapshotAge is the oldest member snapshot a redeem may rely on
	// while the cloud is unreachable.
	MaxSnapshotAge Duration `toml:"max_snapshot_age"`
	// RedeemCapPerDay bounds a card's offline redemptions per day until the
	// cloud issues the card an allowance.
	RedeemCapPerDay loyalty.Points `toml:"redeem_cap_per_day"`
}

// Session is the checkout session: a presented card stays current until the
// basket is posted or it idles this long.
type Session struct {
	IdleTimeout Duration `toml:"idle_timeout"`
}

// Receipt configures the loyalty block.
type Receipt struct {
	Language string `toml:"language"` // en or es
}

// Match picks a device by USB identity or by path.
type Match struct {
	// USB is "VID:PID" in hex, e.g. "0c2e:0b61".
	USB string `toml:"usb"`
	// Serial narrows a USB match to one unit by its serial number.
	Serial string `toml:"serial"`
	// Path is a device path (/dev/ttyACM0, /dev/input/by-id/..., /dev/usb/lp0)
	// or, for a network printer, tcp://host:9100.
	Path string `toml:"path"`
}

// Scanner is a barcode scanner.
type Scanner struct {
	Name string `toml:"name"`
	// Kind is serial (serial and USB-CDC) or hid (keyboard wedge, evdev).
	Kind   string `toml:"kind"`
	USB    string `toml:"usb"`
	Serial string `toml:"serial"`
	Path   string `toml:"path"`
	Baud   int    `toml:"baud"`
	// Suffix frames a scan: CR, LF, CRLF or TAB; empty means inter-character
	// timeout. A hid scanner ends a scan with Enter, and with TAB when set.
	Suffix string `toml:"suffix"`
	// Grab, for a hid scanner, takes the input device exclusively (default
	// true), so that scans do not also type into the POS window; false
	// shares it.
	Grab *bool `toml:"grab"`
}

// Grabs reports whether a hid scanner's input device is taken exclusively.
func (s Scanner) Grabs() bool { return s.Grab == nil || *s.Grab }

// Match returns the scanner's device match.
func (s Scanner) Match() Match { return Match{USB: s.USB, Serial: s.Serial, Path: s.Path} }

// NFCReader is a PC/SC reader.
type NFCReader struct {
	Name string `toml:"name"`
	// Reader is a substring of the PC/SC reader name ("ACR122"); empty means any reader.
	Reader string `toml:"reader"`
}

// Printer is the receipt printer the agent owns; absent when the POS prints.
type Printer struct {
	Name   string `toml:"name"`
	USB    string `toml:"usb"`
	Serial string `toml:"serial"`
	Path   string `toml:"path"`
	Baud   int    `toml:"baud"`
	// Width in columns: 32 (58 mm), 42 or 48 (80 mm).
	Width int `toml:"width"`
	// CodePage is the printer's code page: cp437, cp850, cp858 or wpc1252.
	CodePage string `toml:"code_page"`
}

// Match returns the printer's device match.
func (p Printer) Match() Match { return Match{USB: p.USB, Serial: p.Serial, Path: p.Path} }

// Default returns the configuration used where a file says nothing.
func Default() *Config {
	return &Config{
		Listen:          DefaultListen,
		StateDir:        DefaultStateDir,
		ShutdownTimeout: Duration(DefaultShutdownTimeout),
		Log:             Log{Level: "info", Format: "json"},
		Cloud:           Cloud{Timeout: Duration(DefaultCloudTimeout)},
		Sync:            Sync{PullInterval: Duration(DefaultPullInterval), MaxBackoff: Duration(DefaultMaxBackoff)},
		Offline: Offline{
			MaxSnapshotAge:  Duration(DefaultMaxSnapshotAge),
			RedeemCapPerDay: DefaultRedeemCapPerDay,
		},
		Session: Session{IdleTimeout: Duration(DefaultIdleTimeout)},
		Receipt: Receipt{Language: "en"},
		Peers: Peers{Bind: DefaultPeersBind, IsolatedRedeemCap: DefaultPeersIsolatedRedeemCap,
			QueryThreshold: DefaultPeersQueryThreshold},
	}
}

// EnrollmentDir returns cloud.enrollment_dir or its default under the state directory.
func (c *Config) EnrollmentDir() string {
	if c.Cloud.EnrollmentDir != "" {
		return c.Cloud.EnrollmentDir
	}
	return strings.TrimRight(c.StateDir, "/") + "/enroll"
}

// CardKeyFile returns cloud.card_key_file or its default in the enrollment directory.
func (c *Config) CardKeyFile() string {
	if c.Cloud.CardKeyFile != "" {
		return c.Cloud.CardKeyFile
	}
	return c.EnrollmentDir() + "/card.key"
}

// Duration is a time.Duration written as a Go duration string ("90s", "72h").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration string such as "90s" or "72h".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it like \"90s\", \"15m\" or \"72h\"", string(b))
	}
	*d = Duration(v)
	return nil
}

// Problem is one thing wrong with a configuration, located in its file.
type Problem struct {
	File string
	Line int // 0 when the key is not in the file (a default or a flag)
	Key  string
	Msg  string
}

func (p Problem) Error() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if loc == "" {
		loc = "config"
	}
	if p.Key == "" {
		return loc + ": " + p.Msg
	}
	return loc + ": " + p.Key + ": " + p.Msg
}

// Error is every problem found in a configuration.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "\n")
}

// ErrInvalid is matched by every *Error with errors.Is.
var ErrInvalid = errors.New("invalid configuration")

// Is makes errors.Is(err, ErrInvalid) true for an *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Validate checks every setting; positions, when not nil, locate keys in
// the file the configuration came from (see Load).
func (c *Config) Validate() error { return c.validate("", nil) }

func (c *Config) validate(file string, pos positions) error {
	var probs []Problem
	bad := func(key, format string, args ...any) {
		probs = append(probs, Problem{File: file, Line: pos.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port; write it like \"127.0.0.1:7700\"", c.Listen)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("listen", "port %q is not a number from 0 to 65535", port)
	} else if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		bad("listen", "host %q is not an IP address; the local API listens on an address such as 127.0.0.1", host)
	}
	if c.StateDir == "" {
		bad("state_dir", "must name a directory for the journal, e.g. %q", DefaultStateDir)
	}
	for _, kv := range []struct{ key, v string }{{"store", c.Store}, {"terminal", c.Terminal}} {
		if len(kv.v) > loyalty.MaxFieldLen {
			bad(kv.key, "longer than %d bytes", loyalty.MaxFieldLen)
		}
	}
	if c.ShutdownTimeout.D() <= 0 || c.ShutdownTimeout.D() > 5*time.Minute {
		bad("shutdown_timeout", "%s is out of range; use 1s to 5m", c.ShutdownTimeout)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format", "%q: use json or text", c.Log.Format)
	}
	if c.Cloud.URL != "" {
		u, err := url.Parse(c.Cloud.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("cloud.url", "%q is not an http(s) URL; write it like \"https://loyalty.example.com\"", c.Cloud.URL)
		}
	}
	if c.Cloud.Timeout.D() <= 0 || c.Cloud.Timeout.D() > 5*time.Minute {
		bad("cloud.timeout", "%s is out of range; use 1s to 5m", c.Cloud.Timeout)
	}
	if d := c.Sync.PullInterval.D(); d < 5*time.Second || d > 24*time.Hour {
		bad("sync.pull_interval", "%s is out of range; use 5s to 24h (default %s)", d, DefaultPullInterval)
	}
	if d := c.Sync.MaxBackoff.D(); d < time.Second || d > time.Hour {
		bad("sync.max_backoff", "%s is out of range; use 1s to 1h (default %s)", d, DefaultMaxBackoff)
	}
	if c.Offline.MaxSnapshotAge.D() <= 0 {
		bad("offline.max_snapshot_age", "must be positive, e.g. \"72h\"")
	}
	if c.Offline.RedeemCapPerDay < 0 {
		bad("offline.redeem_cap_per_day", "cannot be negative; 0 refuses every offline redeem")
	}
	if d := c.Session.IdleTimeout.D(); d < time.Second || d > time.Hour {
		bad("session.idle_timeout", "%s is out of range; use 1s to 1h", d)
	}
	if c.Receipt.Language != "en" && c.Receipt.Language != "es" {
		bad("receipt.language", "%q: use en or es", c.Receipt.Language)
	}
	if p := c.Printer; p != nil {
		checkMatch(bad, "printer", Match{USB: p.USB, Path: p.Path, Serial: p.Serial}, true)
		if !slices.Contains([]int{32, 42, 48}, p.Width) {
			bad("printer.width", "%d columns is not supported; use 32 (58 mm roll), 42 or 48 (80 mm roll)", p.Width)
		}
		if !slices.Contains([]string{"cp437", "cp850", "cp858", "wpc1252"}, p.CodePage) {
			bad("printer.code_page", "%q: use cp437, cp850, cp858 (with the euro sign) or wpc1252", p.CodePage)
		}
		if p.Baud < 0 {
			bad("printer.baud", "cannot be negative")
		}
	}
	for i, s := range c.Scanners {
		k := fmt.Sprintf("scanner[%d]", i)
		checkMatch(bad, k, s.Match(), false)
		if s.Kind != "serial" && s.Kind != "hid" {
			bad(k+".kind", "%q: use serial (serial and USB-CDC scanners) or hid (keyboard wedge)", s.Kind)
		}
		if !slices.Contains([]string{"", "CR", "LF", "CRLF", "TAB"}, s.Suffix) {
			bad(k+".suffix", "%q: use CR, LF, CRLF, TAB, or leave it out to frame by timeout", s.Suffix)
		}
		if s.Kind == "hid" {
			if s.Suffix != "" && s.Suffix != "CR" && s.Suffix != "TAB" {
				bad(k+".suffix", "%q: a hid scanner ends a scan with Enter (CR) or TAB", s.Suffix)
			}
			if s.Baud != 0 {
				bad(k+".baud", "a hid scanner has no baud rate; leave it out")
			}
			if s.Path != "" && !strings.HasPrefix(s.Path, "/dev/input/") {
				bad(k+".path", "%q: a hid scanner is an input device, /dev/input/by-id/...-event-kbd or /dev/input/eventN", s.Path)
			}
		} else if s.Grab != nil {
			bad(k+".grab", "only a hid (keyboard wedge) scanner is grabbed; leave it out for a serial one")
		}
		if s.Baud < 0 {
			bad(k+".baud", "cannot be negative")
		}
	}
	c.Peers.validate(bad)
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}

// validate checks the [peers] table; only an enabled one must be complete.
func (p *Peers) validate(bad func(key, format string, args ...any)) {
	checkAddr := func(key, v string) {
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			bad(key, "%q is not host:port; write it like \"192.168.1.21:7946\"", v)
			return
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad(key, "port %q is not a number from 0 to 65535", port)
		}
		if net.ParseIP(host) == nil {
			bad(key, "host %q is not an IP address; the tills gossip on the store LAN by address", host)
		}
	}
	if p.IsolatedRedeemCap < 0 {
		bad("peers.isolated_redeem_cap", "cannot be negative; 0 refuses every redeem of an isolated till")
	}
	if p.QueryThreshold < 0 {
		bad("peers.query_threshold", "cannot be negative; 0 asks the other tills before every offline redeem")
	}
	seen := map[string]bool{}
	for i, t := range p.Roster {
		k := fmt.Sprintf("peers.roster[%d]", i)
		switch {
		case t.Terminal == "":
			bad(k+".terminal", "missing; name the till as it is enrolled")
		case seen[t.Terminal]:
			bad(k+".terminal", "%q is listed twice", t.Terminal)
		}
		seen[t.Terminal] = true
		if t.Address != "" {
			checkAddr(k+".address", t.Address)
		}
		if t.PublicKey == "" {
			bad(k+".public_key", "missing; the till's enrollment public key, Ed25519 in base64")
		} else if _, err := t.PublicKeyBytes(); err != nil {
			bad(k+".public_key", "%v", err)
		}
	}
	if !p.Enabled {
		return
	}
	checkAddr("peers.bind", p.Bind)
	if p.Advertise != "" {
		checkAddr("peers.advertise", p.Advertise)
	}
	// The gossip key and the roster come from the enrollment (the cloud
	// hands them out); gossip_key_file and [[peers.roster]] override them
	// for a store without a cloud, and the agent says so when both are missing.
}

func checkMatch(bad func(key, format string, args ...any), key string, m Match, tcpOK bool) {
	if m.USB == "" && m.Path == "" {
		bad(key, "needs usb = \"VID:PID\" or path = \"/dev/...\" to find the device")
		return
	}
	if m.USB != "" {
		if _, _, err := ParseUSB(m.USB); err != nil {
			bad(key+".usb", "%v", err)
		}
	}
	if m.Serial != "" && m.USB == "" {
		bad(key+".serial", "a serial number narrows a usb match; set usb too")
	}
	if p := m.Path; p != "" {
		switch {
		case strings.HasPrefix(p, "tcp://"):
			if !tcpOK {
				bad(key+".path", "only a printer can be on the network")
			} else if _, _, err := net.SplitHostPort(strings.TrimPrefix(p, "tcp://")); err != nil {
				bad(key+".path", "%q: write a network printer as tcp://host:9100", p)
			}
		case !strings.HasPrefix(p, "/dev/"):
			bad(key+".path", "%q is not a device path under /dev/", p)
		}
	}
}

// ParseUSB reads "VID:PID" (four hex digits each).
func ParseUSB(s string) (vid, pid uint16, err error) {
	v, p, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(v, 16, 16)
	b, err2 := strconv.ParseUint(p, 16, 16)
	if !ok || len(v) != 4 || len(p) != 4 || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q is not VID:PID; write it like \"0c2e:0b61\" (see 'tillpoint devices list')", s)
	}
	return uint16(a), uint16(b), nil
}

// ReadFile reads and validates a configuration file over Default.
func ReadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Load(path, data)
}
