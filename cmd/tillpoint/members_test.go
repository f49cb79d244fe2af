package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/agent"
)

// members reads the agent's real Status type over real HTTP.
func TestMembersListsTheStoreFromTheAgent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(agent.Status{Version: "1.2.3", Terminal: "till-1", Store: "store-042",
			Sync: agent.SyncState{Online: false, BacklogOps: 7},
			Peers: []agent.Peer{{Terminal: "till-2", Addr: "10.0.0.12:7946", Status: "alive", Online: true, Backlog: 3},
				{Terminal: "till-3", Addr: "10.0.0.13:7946", Status: "failed", Online: true, Backlog: 9}}})
	}))
	defer srv.Close()

	code, out, errOut := run(t, "members", "--agent", srv.URL)
	if code != 0 {
		t.Fatalf("exit code: got %d, want 0 (stderr %q)", code, errOut)
	}
	for _, want := range []string{"store store-042", "TERMINAL", "SERVICE", "BACKLOG"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q does not contain %q", out, want)
		}
	}
	// Each till's row: this till from its own sync state, a live peer from
	// its tags, a failed peer without the stale figures its tags held.
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	for till, want := range map[string]string{
		"till-1": "till-1 (this till) - alive offline 7",
		"till-2": "till-2 10.0.0.12:7946 alive online 3",
		"till-3": "till-3 10.0.0.13:7946 failed - -",
	} {
		if got := strings.Join(rows[till], " "); got != want {
			t.Errorf("row of %s: got %q, want %q", till, got, want)
		}
	}

	code, out, errOut = run(t, "members", "--agent", srv.URL, "--json")
	if code != 0 {
		t.Fatalf("--json exit code: got %d, want 0 (stderr %q)", code, errOut)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(lines[0], `"self":true`) {
		t.Errorf("--json: got %q, want 3 lines, this till first", out)
	}
}

func TestMembersSaysWhatToDoWhenTheAgentIsDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	code, _, errOut := run(t, "members", "--agent", url, "--timeout", "2s")
	if code != 1 || !strings.Contains(errOut, "is 'tillpoint agent' running") {
		t.Errorf("agent down: got exit %d, stderr %q; want 1 and a hint to start the agent", code, errOut)
	}
	if code, _, _ := run(t, "members", "extra"); code != 2 {
		t.Errorf("extra argument: got exit %d, want 2", code)
	}
}
