package peers

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Terminal is one till of the store as the cloud's roster describes it.
type Terminal struct {
	// ID is the terminal ID; it is also the terminal's serf node name.
	ID string
	// PublicKey verifies the events the terminal signs: its enrollment key.
	PublicKey ed25519.PublicKey
	// Addr is the terminal's gossip address (host:port) for the join list;
	// empty when the cloud does not know it.
	Addr string
}

// Roster is the store's terminals, from the cloud. It is immutable once made;
// Peers.SetRoster swaps in a new one.
type Roster struct {
	byID map[string]Terminal
}

// NewRoster validates terminals and returns their roster. An ID given twice,
// an empty or over-long ID, or a key of the wrong size is an error.
func NewRoster(terminals ...Terminal) (*Roster, error) {
	r := &Roster{byID: make(map[string]Terminal, len(terminals))}
	for _, t := range terminals {
		if err := validTerminalID(t.ID); err != nil {
			return nil, fmt.Errorf("%w: roster: %w", ErrConfig, err)
		}
		if err := loyalty.CheckSigningKey(t.PublicKey); err != nil {
			return nil, fmt.Errorf("%w: roster: terminal %q: %w; re-fetch the roster from the cloud", ErrConfig, t.ID, err)
		}
		if _, dup := r.byID[t.ID]; dup {
			return nil, fmt.Errorf("%w: roster: terminal %q listed twice", ErrConfig, t.ID)
		}
		t.PublicKey = slices.Clone(t.PublicKey)
		r.byID[t.ID] = t
	}
	return r, nil
}

// Key returns the public key of terminal id.
func (r *Roster) Key(id string) (ed25519.PublicKey, bool) {
	if r == nil {
		return nil, false
	}
	t, ok := r.byID[id]
	return t.PublicKey, ok
}

// Len returns the number of terminals.
func (r *Roster) Len() int {
	if r == nil {
		return 0
	}
	return len(r.byID)
}

// Terminals returns the roster's terminals sorted by ID.
func (r *Roster) Terminals() []Terminal {
	if r == nil {
		return nil
	}
	out := make([]Terminal, 0, len(r.byID))
	for _, t := range r.byID {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Terminal) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// JoinAddrs returns the gossip addresses of every terminal but self, sorted.
func (r *Roster) JoinAddrs(self string) []string {
	if r == nil {
		return nil
	}
	var addrs []string
	for id, t := range r.byID {
		if id != self && t.Addr != "" {
			addrs = append(addrs, t.Addr)
		}
	}
	slices.Sort(addrs)
	return addrs
}

// validTerminalID accepts 1 to MaxTerminalLen printable ASCII bytes without spaces.
func validTerminalID(id string) error {
	if len(id) == 0 || len(id) > MaxTerminalLen {
		return fmt.Errorf("terminal id must be 1 to %d bytes, got %d", MaxTerminalLen, len(id))
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("terminal id %q: printable ASCII without spaces only", id)
		}
	}
	return nil
}
