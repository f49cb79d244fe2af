package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/offline/peers"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

// StorePeers is the agent's membership of its store's cluster
// (offline/peers): the redeems it makes offline are checked with the other
// tills before the journal records them, and announced to them after.
type StorePeers struct {
	P   *peers.Peers
	J   *journal.Journal
	log *slog.Logger
	// From says where the roster and the keyring came from; only what came
	// from the cloud follows the cloud (RefreshRoster).
	From PeersSource

	refresh sync.Mutex // held by RefreshRoster
	mu      sync.Mutex
	version uint64 // the cloud roster's version in use
}

var _ Peers = (*StorePeers)(nil)

// NewStorePeers makes the till's member of its store cluster from cfg's
// [peers] table and the roster and keyring the cloud handed out (cloud,
// from the enrollment directory; nil when there is none), signing with the
// terminal's enrollment key and recording the other tills' redeems in j.
// cfg.Store and cfg.Terminal must already be the enrollment's. tune, when
// not nil, changes the peers config last (tests shorten serf's timings).
// Nothing touches the network until Start.
func NewStorePeers(cfg *config.Config, key ed25519.PrivateKey, cloud *enroll.Roster, j *journal.Journal, version string,
	logger *slog.Logger, tune func(*peers.Config)) (*StorePeers, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pc, from, err := PeersConfig(cfg, key, cloud, version)
	if err != nil {
		return nil, err
	}
	pc.Logger = logger.With("component", "peers")
	if tune != nil {
		tune(&pc)
	}
	p, err := peers.New(pc, peers.FromJournal(j))
	if err != nil {
		return nil, fmt.Errorf("store peers: %w", err)
	}
	return &StorePeers{P: p, J: j, log: pc.Logger, From: from, version: cloud.Version()}, nil
}

// PeersSource says where a till's store roster and gossip keyring come
// from: SourceCloud (the enrollment directory, refreshed from the cloud)
// or SourceConfig (agent.toml's [peers], an override for stores without a
// cloud).
type PeersSource struct {
	Roster, Keys string
}

// Where a roster or keyring comes from.
const (
	SourceCloud  = "cloud"
	SourceConfig = "config"
)

// PeersConfig turns cfg's [peers] table and the cloud's roster into an
// offline/peers config. The config's roster and gossip key file, when
// given, override the cloud's.
func PeersConfig(cfg *config.Config, key ed25519.PrivateKey, cloud *enroll.Roster, version string) (peers.Config, PeersSource, error) {
	c := cfg.Peers
	pc := peers.DefaultConfig()
	var from PeersSource
	pc.Store, pc.Terminal, pc.Version = cfg.Store, cfg.Terminal, version
	var err error
	if pc.BindAddr, pc.BindPort, err = splitAddr(c.Bind); err != nil {
		return pc, from, fmt.Errorf("peers.bind: %w", err)
	}
	if c.Advertise != "" {
		if pc.AdvertiseAddr, pc.AdvertisePort, err = splitAddr(c.Advertise); err != nil {
			return pc, from, fmt.Errorf("peers.advertise: %w", err)
		}
	}
	switch {
	case c.GossipKeyFile != "":
		gk, err := ReadGossipKey(c.GossipKeyFile)
		if err != nil {
			return pc, from, err
		}
		pc.Keys, from.Keys = [][]byte{gk}, SourceConfig
	case cloud != nil && len(cloud.GossipKeys) > 0:
		pc.Keys, from.Keys = cloud.GossipKeys, SourceCloud
		// serf keeps the keyring the store's tills rotate here, so a
		// restart in the middle of a rotation still understands the store.
		pc.KeyringPath = filepath.Join(cfg.StateDir, "serf.keyring")
	default:
		return pc, from, errors.New("peers: no gossip key: enroll against a cloud that hands out the store's keyring, or set peers.gossip_key_file")
	}
	pc.SnapshotPath = cfg.PeersSnapshotPath()
	pc.SigningKey = key
	pc.QueryThreshold, pc.IsolatedRedeemCap = c.QueryThreshold, c.IsolatedRedeemCap
	switch {
	case len(c.Roster) > 0:
		ts := make([]peers.Terminal, 0, len(c.Roster))
		for i, t := range c.Roster {
			pub, err := t.PublicKeyBytes()
			if err != nil {
				return pc, from, fmt.Errorf("peers.roster[%d] (%s): %w", i, t.Terminal, err)
			}
			ts = append(ts, peers.Terminal{ID: t.Terminal, PublicKey: pub, Addr: t.Address})
		}
		if pc.Roster, err = peers.NewRoster(ts...); err != nil {
			return pc, from, fmt.Errorf("peers.roster: %w", err)
		}
		from.Roster = SourceConfig
	case cloud != nil:
		if pc.Roster, err = PeerRoster(cloud); err != nil {
			return pc, from, err
		}
		from.Roster = SourceCloud
	default:
		return pc, from, errors.New("peers: no store roster: enroll against a cloud that hands out rosters, or list the tills in [[peers.roster]]")
	}
	return pc, from, nil
}

func splitAddr(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", s, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("%q: port is not a number", s)
	}
	return host, n, nil
}

// ReadGossipKey reads the store's gossip key: 32 bytes in base64, in a file
// no one but the agent's user may read.
func ReadGossipKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key: %w (write the store's key there, base64, mode 0600, or fix peers.gossip_key_file)", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("gossip key %s has mode %04o: others can read the store's key; run 'chmod 600 %s'", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("gossip key %s is not base64: %w; write the store's key as issued", path, err)
	}
	if len(k) != 32 {
		return nil, fmt.Errorf("gossip key %s is %d bytes, want 32; write the store's key as issued", path, len(k))
	}
	return k, nil
}

// Start announces again the till's unacknowledged offline redeems (a
// restart forgot them) and joins the store's cluster.
func (s *StorePeers) Start(ctx context.Context) error {
	if n, err := s.P.AnnounceUnacked(ctx, s.J); err != nil {
		s.log.Warn("announce unacknowledged offline redeems", keyErr, err)
	} else if n > 0 {
		s.log.Info("announcing unacknowledged offline redeems", "redeems", n)
	}
	if err := s.P.Start(ctx); err != nil {
		return fmt.Errorf("store peers: %w", err)
	}
	return nil
}

// Shutdown leaves the cluster.
func (s *StorePeers) Shutdown(ctx context.Context) error { return s.P.Shutdown(ctx) }

// PeerNeverSeen is the status of a till the roster lists and the store's
// gossip has never seen.
const PeerNeverSeen = "never seen"

// Peers lists the store's other tills for /v1/status: those the gossip
// knows, then those only the roster lists.
func (s *StorePeers) Peers() []Peer {
	ms, err := s.P.Members()
	if err != nil {
		return nil
	}
	out := make([]Peer, 0, len(ms))
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		seen[m.Name] = true
		if m.Self {
			continue
		}
		out = append(out, Peer{Terminal: m.Name, Addr: m.Addr, Status: m.Status, Online: m.Online, Backlog: m.Backlog})
	}
	// A till of the roster never heard on the store network: it may be
	// off, or cut off and redeeming where nobody hears it.
	for _, t := range s.P.Roster().Terminals() {
		if !seen[t.ID] {
			out = append(out, Peer{Terminal: t.ID, Addr: t.Addr, Status: PeerNeverSeen})
		}
	}
	return out
}

// FollowUplink publishes the uplink's state in the till's tags every
// interval until ctx ends: peers apply the isolated cap only when the
// cloud is out of reach too.
func (s *StorePeers) FollowUplink(ctx context.Context, u Uplink, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		st := u.State()
		var acked peers.Watermark
		if epoch, seq, err := s.J.Acked(ctx); err == nil {
			acked = peers.Watermark{Epoch: epoch, Seq: seq}
		}
		s.P.SetState(peers.State{Online: st.Online, Backlog: st.BacklogOps, Acked: acked})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PutSnapshots wraps the feed's store of cloud snapshots: once stored, the
// peer redeems they cover are dropped (Peers.Covered). fetchStarted is
// taken as now less the request timeout, never later than the page's
// request really started, so nothing uncovered is dropped.
func (s *StorePeers) PutSnapshots(put func(context.Context, []loyalty.Snapshot) error, timeout time.Duration) func(context.Context, []loyalty.Snapshot) error {
	return func(ctx context.Context, snaps []loyalty.Snapshot) error {
		started := time.Now().Add(-timeout)
		if err := put(ctx, snaps); err != nil {
			return err
		}
		for _, sn := range snaps {
			if _, err := s.P.Covered(ctx, sn.Card, started); err != nil {
				s.log.Warn("drop peer redeems a snapshot covers", keyCard, sn.Card.Short(), keyErr, err)
			}
		}
		return nil
	}
}

// Journal returns j with the store's peers around its offline redeems:
// CheckRedeem asks the other tills before the journal's own policy runs (a
// refusal, such as the isolated cap, is a refusal like the journal's), and
// Broadcast tells them once the redeem is durable.
func (s *StorePeers) Journal(j Journal) Journal { return peerJournal{Journal: j, s: s} }

type peerJournal struct {
	Journal
	s *StorePeers
}

func (pj peerJournal) Append(ctx context.Context, op *loyalty.Op) error {
	if op.Kind != loyalty.OpRedeem || !op.Offline {
		return pj.Journal.Append(ctx, op)
	}
	// A retry of a redeem already durable only needs the journal's answer:
	// asking again would count the redeem against itself.
	if _, found, err := pj.s.J.OpByID(ctx, op.ID); err != nil {
		return fmt.Errorf("look up op %s: %w", op.ID, err)
	} else if found {
		return pj.Journal.Append(ctx, op)
	}
	// The agent found the cloud out of reach for this redeem; the tags
	// follow the uplink only every FollowUplink interval, so say it now.
	if st := pj.s.P.State(); st.Online {
		st.Online = false
		pj.s.P.SetState(st)
	}
	if _, err := pj.s.P.CheckRedeem(ctx, op.Card, -op.Points); err != nil {
		var ic *peers.IsolatedCapError
		if errors.As(err, &ic) {
			return &Error{Code: CodeOfflineCapReached, Message: ic.Error(), Err: fmt.Errorf("%w: %w", ErrOfflineCapReached, err)}
		}
		return fmt.Errorf("ask the store's other tills: %w", err)
	}
	if err := pj.Journal.Append(ctx, op); err != nil {
		return err
	}
	if err := pj.s.P.Broadcast(ctx, op); err != nil {
		pj.s.log.Warn("announce an offline redeem to the store; the redeem stands", keyOp, op.ID.String(), keyErr, err)
	}
	return nil
}
