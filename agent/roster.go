package agent

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"time"

	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/offline/peers"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

// PeerRoster turns the cloud's store roster into the peers' roster: the
// terminals the cloud revoked are left out, so their events stop
// verifying.
func PeerRoster(r *enroll.Roster) (*peers.Roster, error) {
	var ts []peers.Terminal
	for _, t := range r.Doc.Terminals {
		if !t.Revoked {
			ts = append(ts, peers.Terminal{ID: t.ID, PublicKey: t.PublicKey, Addr: t.Addr})
		}
	}
	pr, err := peers.NewRoster(ts...)
	if err != nil {
		return nil, fmt.Errorf("the cloud's store roster (version %d): %w", r.Version(), err)
	}
	return pr, nil
}

// PeersConflicts lists where agent.toml's [peers] overrides the roster or
// keyring the cloud handed out, for --check-config: an override is
// deliberate for a store without a cloud, and a mistake otherwise.
func PeersConflicts(cfg *config.Config, cloud *enroll.Roster) []string {
	if cloud == nil {
		return nil
	}
	var out []string
	if n := len(cfg.Peers.Roster); n > 0 {
		out = append(out, fmt.Sprintf("peers.roster lists %d tills and overrides the cloud's roster (version %d, %d tills): new and revoked tills will not be followed; remove [[peers.roster]] to use the cloud's",
			n, cloud.Version(), len(cloud.Doc.Terminals)))
		byID := map[string]config.PeerTerminal{}
		for _, t := range cfg.Peers.Roster {
			byID[t.Terminal] = t
		}
		for _, t := range cloud.Doc.Terminals {
			mine, ok := byID[t.ID]
			switch {
			case !ok && !t.Revoked:
				out = append(out, fmt.Sprintf("peers.roster lacks till %s, which the cloud lists: its redeems will be ignored", t.ID))
			case ok && t.Revoked:
				out = append(out, fmt.Sprintf("peers.roster trusts till %s, which the cloud revoked", t.ID))
			case ok:
				if pub, err := mine.PublicKeyBytes(); err == nil && !pub.Equal(t.PublicKey) {
					out = append(out, fmt.Sprintf("peers.roster has another public key for till %s than the cloud", t.ID))
				}
			}
		}
	}
	if cfg.Peers.GossipKeyFile != "" && len(cloud.GossipKeys) > 0 {
		k, err := ReadGossipKey(cfg.Peers.GossipKeyFile)
		same := err == nil && subtle.ConstantTimeCompare(k, cloud.GossipKeys[0]) == 1
		if !same {
			out = append(out, "peers.gossip_key_file holds another key than the store's primary from the cloud: this till cannot talk to the store's other tills; remove gossip_key_file to use the cloud's keyring")
		} else {
			out = append(out, "peers.gossip_key_file overrides the cloud's keyring: key rotations will not be followed; remove it to use the cloud's")
		}
	}
	return out
}

// RosterSource fetches the store roster from the cloud and keeps it.
type RosterSource interface {
	// FetchRoster returns the cloud's roster, refusing one older than have.
	FetchRoster(ctx context.Context, have uint64) (*enroll.Roster, error)
	// SaveRoster keeps it, so the next start begins from it.
	SaveRoster(r *enroll.Roster) error
}

// CloudRoster is the RosterSource of an enrolled till: GET /v1/roster,
// kept in the enrollment directory.
type CloudRoster struct {
	State  *enroll.State
	Client *http.Client
	URL    string // the cloud's base URL
}

// FetchRoster implements RosterSource.
func (c CloudRoster) FetchRoster(ctx context.Context, have uint64) (*enroll.Roster, error) {
	return c.State.FetchRoster(ctx, c.Client, c.URL, have)
}

// SaveRoster implements RosterSource.
func (c CloudRoster) SaveRoster(r *enroll.Roster) error { return c.State.SaveRoster(r) }

// RefreshRoster fetches the store roster and keyring from the cloud, keeps
// them, and applies them live: a till the cloud added verifies at once, a
// revoked one stops verifying, and a rotated keyring is installed, used
// and retired across the store (peers.SetKeyring). What agent.toml
// overrides is left alone.
func (s *StorePeers) RefreshRoster(ctx context.Context, src RosterSource) error {
	s.refresh.Lock() // one refresh at a time: a slower one must not undo a newer one
	defer s.refresh.Unlock()
	s.mu.Lock()
	have := s.version
	s.mu.Unlock()
	r, err := src.FetchRoster(ctx, have)
	if err != nil {
		return fmt.Errorf("refresh the store roster: %w", err)
	}
	if err := src.SaveRoster(r); err != nil {
		return fmt.Errorf("keep the store roster: %w", err)
	}
	if s.From.Roster == SourceCloud && r.Version() != have {
		pr, err := PeerRoster(r)
		if err != nil {
			return err
		}
		if err := s.P.SetRoster(pr); err != nil {
			return err
		}
		s.log.Info("store roster updated", "version", r.Version(), "tills", pr.Len())
	}
	s.mu.Lock()
	s.version = r.Version()
	s.mu.Unlock()
	if s.From.Keys == SourceCloud {
		ch, err := s.P.SetKeyring(ctx, r.GossipKeys)
		if err != nil {
			return fmt.Errorf("apply the store's gossip keyring: %w", err)
		}
		if ch.Pending {
			s.log.Info("a new gossip key waits until every live till holds it; retrying at the next refresh")
		}
	}
	return nil
}

// RosterVersion returns the version of the cloud roster in use, 0 for none.
func (s *StorePeers) RosterVersion() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// FollowRoster refreshes the roster now and then every interval until ctx
// ends; a failed refresh is logged and the till keeps what it has.
func (s *StorePeers) FollowRoster(ctx context.Context, src RosterSource, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.RefreshRoster(ctx, src); err != nil && ctx.Err() == nil {
			s.log.Warn("store roster not refreshed; the till keeps the one it has", keyErr, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
