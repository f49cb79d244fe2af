package agenttest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/offline/peers"
)

// FastPeers shortens serf's timings as offline/peers' own tests do, so a
// store of a few tills converges in well under a second under -race.
func FastPeers(c *peers.Config) {
	c.Timing = peers.Timing{
		GossipInterval: 50 * time.Millisecond, ProbeInterval: 300 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond,
		SuspicionMult: 2, PushPullInterval: time.Second, TCPTimeout: 500 * time.Millisecond,
		ReconnectInterval: 150 * time.Millisecond, ReapInterval: time.Second, BroadcastTimeout: 200 * time.Millisecond,
	}
	c.RetryJoinInterval, c.ReannounceEvery, c.LeaveTimeout = 100*time.Millisecond, 100*time.Millisecond, 300*time.Millisecond
}

// Till is one till of a test store: its ID, the loopback IP its gossip
// binds to, and its enrollment key.
type Till struct {
	ID, IP string
	Key    ed25519.PrivateKey
}

// NewTill makes a till with a fresh key.
func NewTill(t testing.TB, id, ip string) Till {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Till{ID: id, IP: ip, Key: k}
}

// Pub returns the till's public key as agent.toml's roster writes it.
func (tl Till) Pub() string {
	return base64.StdEncoding.EncodeToString(tl.Key.Public().(ed25519.PublicKey))
}

// WriteGossipKey writes a store gossip key file (mode 0600) in dir.
func WriteGossipKey(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// StartStoreTill runs self's agent with store peers on, every till of all
// in its [peers] roster, the cloud out of reach; join maps a till's ID to
// its gossip address when known. o.Config runs after the peers settings.
func StartStoreTill(t testing.TB, self Till, all []Till, join map[string]string, gossipKeyFile string, o Options) *Harness {
	t.Helper()
	configure := o.Config
	o.Config = func(c *config.Config) {
		c.Terminal = self.ID
		c.Peers.Enabled = true
		c.Peers.Bind = self.IP + ":0"
		c.Peers.GossipKeyFile = gossipKeyFile
		c.Peers.QueryThreshold = 0 // ask the other tills before every redeem
		for _, tl := range all {
			c.Peers.Roster = append(c.Peers.Roster, config.PeerTerminal{Terminal: tl.ID, Address: join[tl.ID], PublicKey: tl.Pub()})
		}
		if configure != nil {
			configure(c)
		}
	}
	o.Peers = func(c *config.Config, j *journal.Journal) (*agent.StorePeers, error) {
		return agent.NewStorePeers(c, self.Key, nil, j, "test", nil, FastPeers)
	}
	h := Start(t, o)
	h.Uplink.Set(agent.SyncState{Online: false, LastError: "cloud unreachable (test)"})
	return h
}
