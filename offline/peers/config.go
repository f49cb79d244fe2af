package peers

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Defaults of the settings a Config may leave at zero.
const (
	DefaultBindPort          = 7946
	DefaultQueryTimeout      = 400 * time.Millisecond
	DefaultQueryThreshold    = loyalty.Points(100)
	DefaultIsolatedRedeemCap = loyalty.Points(100)
	DefaultRetryJoinInterval = 5 * time.Second
	DefaultReannounceEvery   = time.Second
	DefaultLeaveTimeout      = 2 * time.Second
	DefaultRecordTimeout     = 2 * time.Second
	DefaultRetention         = 24 * time.Hour
)

// MaxQueryTimeout is the longest query CheckRedeem may make a checkout wait.
const MaxQueryTimeout = 500 * time.Millisecond

// Config is what a terminal needs to join its store's cluster.
type Config struct {
	// Store is the store ID from enrollment. It is the memberlist label, so
	// terminals of different stores never join each other, and it is bound
	// into every event signature.
	Store string
	// Terminal is this terminal's ID, its serf node name.
	Terminal string
	// Version is the agent's version, published in the tags.
	Version string

	// BindAddr and BindPort are where gossip listens (UDP and TCP).
	// DefaultConfig sets DefaultBindPort; 0 picks a free port (tests).
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what peers dial, when they differ
	// from the bind address (NAT, 0.0.0.0 binds).
	AdvertiseAddr string
	AdvertisePort int

	// Join lists gossip addresses to join besides the roster's.
	Join []string
	// RetryJoinInterval is how often Peers tries the join list again while
	// it has no live peer.
	RetryJoinInterval time.Duration

	// SnapshotPath is serf's snapshot file: a restart rejoins the members it
	// knew and does not replay events it has already seen. Empty: none.
	SnapshotPath string
	// Keys are the store's gossip keys (16, 24 or 32 bytes), the first one
	// the primary. KeyringPath, when set, persists rotations and wins over
	// Keys once it exists. No keys: gossip in the clear (tests only).
	Keys        [][]byte
	KeyringPath string

	// SigningKey is the terminal's own Ed25519 key (from enrollment).
	SigningKey ed25519.PrivateKey
	// Roster is the store's terminals and their public keys.
	Roster *Roster

	// QueryThreshold: CheckRedeem asks the peers before approving a redeem of
	// at least this many points; 0 asks for every redeem.
	QueryThreshold loyalty.Points
	// QueryTimeout bounds that question; at most MaxQueryTimeout.
	QueryTimeout time.Duration
	// IsolatedRedeemCap is what a card may redeem offline in total, as far as
	// this terminal knows, while it reaches neither the cloud nor any peer;
	// 0 refuses every redeem then.
	IsolatedRedeemCap loyalty.Points

	// ReannounceEvery rate-limits re-announcing this terminal's redeems when
	// members join. LeaveTimeout bounds a graceful leave at Shutdown.
	// RecordTimeout bounds one journal write for a received event.
	// Retention keeps an acknowledged redeem of ours, and a peer's redeem,
	// in memory (announced, served in answers) this long.
	ReannounceEvery time.Duration
	LeaveTimeout    time.Duration
	RecordTimeout   time.Duration
	Retention       time.Duration

	// Timing tunes memberlist and serf; zero fields keep the LAN defaults.
	Timing Timing

	// Transport replaces memberlist's UDP/TCP transport (tests use it to
	// cut a terminal off); nil binds BindAddr:BindPort.
	Transport memberlist.Transport

	// Logger receives the package's and serf's logs; slog.Default when nil.
	Logger *slog.Logger
	// Now reads the clock; time.Now when nil.
	Now func() time.Time
}

// Timing are memberlist and serf intervals. Production keeps the LAN
// defaults; tests shorten them so failures are detected in milliseconds.
type Timing struct {
	GossipInterval    time.Duration
	ProbeInterval     time.Duration
	ProbeTimeout      time.Duration
	SuspicionMult     int
	PushPullInterval  time.Duration
	TCPTimeout        time.Duration
	ReconnectInterval time.Duration
	ReapInterval      time.Duration
	BroadcastTimeout  time.Duration
}

// DefaultConfig returns a Config with every default set; fill in the store,
// terminal, keys and roster from enrollment.
func DefaultConfig() Config {
	return Config{
		BindAddr:          "0.0.0.0",
		BindPort:          DefaultBindPort,
		QueryThreshold:    DefaultQueryThreshold,
		QueryTimeout:      DefaultQueryTimeout,
		IsolatedRedeemCap: DefaultIsolatedRedeemCap,
		RetryJoinInterval: DefaultRetryJoinInterval,
		ReannounceEvery:   DefaultReannounceEvery,
		LeaveTimeout:      DefaultLeaveTimeout,
		RecordTimeout:     DefaultRecordTimeout,
		Retention:         DefaultRetention,
	}
}

// withDefaults returns a copy of c with zero durations, logger and clock set
// to their defaults. Zero points settings stay zero: they mean something.
func (c Config) withDefaults() Config {
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.RetryJoinInterval == 0 {
		c.RetryJoinInterval = DefaultRetryJoinInterval
	}
	if c.ReannounceEvery == 0 {
		c.ReannounceEvery = DefaultReannounceEvery
	}
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = DefaultLeaveTimeout
	}
	if c.RecordTimeout == 0 {
		c.RecordTimeout = DefaultRecordTimeout
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first setting that cannot work, saying what to fix.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Store == "":
		return bad("no store ID; enroll the terminal first (tillpoint enroll)")
	case len(c.Store) > memberlist.LabelMaxSize:
		return bad("store ID %q is longer than %d bytes, the longest memberlist label", c.Store, memberlist.LabelMaxSize)
	case len(c.SigningKey) != ed25519.PrivateKeySize:
		return bad("terminal signing key is %d bytes, want %d; re-enroll the terminal", len(c.SigningKey), ed25519.PrivateKeySize)
	case c.Roster == nil:
		return bad("no store roster; fetch it from the cloud")
	case c.QueryTimeout < 0 || c.QueryTimeout > MaxQueryTimeout:
		return bad("query timeout %s: want more than 0 and at most %s, so a checkout never stalls", c.QueryTimeout, MaxQueryTimeout)
	case c.IsolatedRedeemCap < 0 || c.QueryThreshold < 0:
		return bad("isolated redeem cap %d and query threshold %d: want 0 or more", c.IsolatedRedeemCap, c.QueryThreshold)
	case c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535:
		return bad("gossip ports must be 0 to 65535")
	}
	if err := validTerminalID(c.Terminal); err != nil {
		return bad("%v", err)
	}
	if net.ParseIP(c.BindAddr) == nil {
		return bad("bind address %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return bad("advertise address %q is not an IP address", c.AdvertiseAddr)
	}
	for i, k := range c.Keys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return bad("gossip key %d is %d bytes, want 16, 24 or 32 (AES-128, -192 or -256)", i+1, n)
		}
	}
	pub, ok := c.Roster.Key(c.Terminal)
	if !ok {
		return bad("terminal %q is not in the store roster; refresh the roster from the cloud", c.Terminal)
	}
	if !pub.Equal(c.SigningKey.Public()) {
		return bad("the roster's key for terminal %q is not this terminal's key; re-enroll or refresh the roster", c.Terminal)
	}
	return nil
}
