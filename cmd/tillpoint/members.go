package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const membersUsage = `Lists the terminals of this store and their state, as this till's agent
sees them over the store network (in the style of 'serf members').

It asks the local agent (GET /v1/status); the agent must be running. A till
that shows 'failed' cannot be reached: while the loyalty service is down
too, offline redeems at the tills that cannot see each other are held to
the stricter isolated cap. A till the store roster lists but the store
network never saw shows 'never seen'. SERVICE says whether a till reaches
the loyalty service, BACKLOG how many of its operations wait to reach it.`

// memberJSON is one terminal in the members output; it does not change
// when the agent's or the peers package's types do.
type memberJSON struct {
	Terminal string `json:"terminal"`
	Addr     string `json:"addr,omitempty"`
	Status   string `json:"status"`
	Online   bool   `json:"online"`  // it reaches the loyalty service
	Backlog  int    `json:"backlog"` // its ops the service has not acknowledged
	Self     bool   `json:"self,omitempty"`
}

// statusJSON is the part of the agent's GET /v1/status this command reads.
type statusJSON struct {
	Terminal string       `json:"terminal"`
	Store    string       `json:"store"`
	Version  string       `json:"version"`
	Peers    []memberJSON `json:"peers"`
	Sync     struct {
		Online  bool `json:"online"`
		Backlog int  `json:"backlog_ops"`
	} `json:"sync"`
}

func (m *Main) runMembers(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "members", "members [--agent URL] [--json]", membersUsage)
	agentURL := fs.String("agent", "http://127.0.0.1:7700", "the local agent's API `URL` (its listen address)")
	asJSON := fs.Bool("json", false, "print JSON, one object per terminal, for scripts")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the agent")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q; 'members' takes only flags", fs.Arg(0))
	}
	st, err := fetchStatus(ctx, strings.TrimRight(*agentURL, "/")+"/v1/status", *timeout)
	if err != nil {
		return err
	}
	self := memberJSON{Terminal: st.Terminal, Status: "alive", Online: st.Sync.Online, Backlog: st.Sync.Backlog, Self: true}
	members := append([]memberJSON{self}, st.Peers...)
	if *asJSON {
		enc := json.NewEncoder(m.Stdout)
		for _, mb := range members {
			if err := enc.Encode(mb); err != nil {
				return fmt.Errorf("write members: %w", err)
			}
		}
		return nil
	}
	return printMembers(m.Stdout, st.Store, members)
}

func fetchStatus(ctx context.Context, url string, timeout time.Duration) (statusJSON, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return statusJSON{}, usageError("--agent: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return statusJSON{}, fmt.Errorf("ask the agent at %s: %w; is 'tillpoint agent' running, and is --agent its listen address?", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusJSON{}, fmt.Errorf("ask the agent at %s: %s; check the agent's log", url, resp.Status)
	}
	var st statusJSON
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return statusJSON{}, fmt.Errorf("read the agent's status from %s: %w; is --agent a tillpoint agent?", url, err)
	}
	return st, nil
}

func printMembers(w io.Writer, store string, members []memberJSON) error {
	if store != "" {
		fmt.Fprintf(w, "store %s\n", store)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TERMINAL\tADDRESS\tSTATUS\tSERVICE\tBACKLOG")
	for _, mb := range members {
		name, addr := mb.Terminal, mb.Addr
		if mb.Self {
			name += " (this till)"
		}
		if addr == "" {
			addr = "-"
		}
		service, backlog := "offline", strconv.Itoa(mb.Backlog)
		switch {
		case mb.Status != "alive" && !mb.Self:
			service, backlog = "-", "-" // not heard from: what its tags said last is stale
		case mb.Online:
			service = "online"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, addr, mb.Status, service, backlog)
	}
	if len(members) == 1 {
		fmt.Fprintln(tw, "(no other terminal of the store is known to this till)")
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write members: %w", err)
	}
	return nil
}
