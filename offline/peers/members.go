package peers

import (
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/serf/serf"
)

// Member is one terminal of the store as this terminal sees it: what
// `tillpoint members`, /v1/status and the cashier screen show.
type Member struct {
	Name     string `json:"name"`     // serf node name: the terminal ID
	Terminal string `json:"terminal"` // from its tags
	Addr     string `json:"addr"`     // gossip address, host:port
	Status   string `json:"status"`   // alive, leaving, left, failed
	Version  string `json:"version,omitempty"`
	Online   bool   `json:"online"`  // it reaches the cloud
	Backlog  int    `json:"backlog"` // its ops the cloud has not acknowledged
	Acked    string `json:"acked"`   // "epoch.seq" the cloud acknowledged
	Self     bool   `json:"self,omitempty"`
	// InRoster is false for a member the store roster does not list: its
	// events are ignored.
	InRoster bool `json:"in_roster"`
}

// Members returns the store's terminals as serf knows them, sorted by name.
func (p *Peers) Members() ([]Member, error) {
	s, err := p.running()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	roster := p.roster
	p.mu.Unlock()
	var out []Member
	for _, m := range s.Members() {
		backlog, _ := strconv.Atoi(m.Tags[TagBacklog])
		_, inRoster := roster.Key(m.Name)
		host := m.Addr.String()
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		out = append(out, Member{
			Name:     m.Name,
			Terminal: m.Tags[TagTerminal],
			Addr:     host + ":" + strconv.Itoa(int(m.Port)),
			Status:   statusName(m.Status),
			Version:  m.Tags[TagVersion],
			Online:   m.Tags[TagOnline] == "1",
			Backlog:  backlog,
			Acked:    m.Tags[TagAcked],
			Self:     m.Name == p.cfg.Terminal,
			InRoster: inRoster,
		})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func statusName(s serf.MemberStatus) string {
	switch s {
	case serf.StatusAlive:
		return "alive"
	case serf.StatusLeaving:
		return "leaving"
	case serf.StatusLeft:
		return "left"
	case serf.StatusFailed:
		return "failed"
	}
	return "unknown"
}
