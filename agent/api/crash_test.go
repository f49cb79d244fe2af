package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/agent/api"
)

// TestCrashChild is the agent the crash test kills; it runs only when the
// crash test starts it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("TILLPOINT_AGENT_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestKilledAgentNeverEarnsTwice")
	}
	h := agenttest.Start(t, agenttest.Options{StateDir: dir})
	fmt.Printf("URL %s\n", h.URL)
	select {}
}

func startCrashChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), "TILLPOINT_AGENT_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		if url, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, url
		}
	}
	t.Fatalf("the agent child did not start: %v", sc.Err())
	return nil, ""
}

// An agent killed with SIGKILL while POS apps post checkouts loses no op it
// acknowledged, and every retry after the restart gets the first answer:
// one op per Idempotency-Key, never two (invariant 1 and idempotency).
func TestKilledAgentNeverEarnsTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts an agent; skipped with -short")
	}
	dir := t.TempDir()
	const rounds, perRound = 3, 12
	acked := map[string]string{} // key → op ID a POS was given
	var mu sync.Mutex
	body, _ := json.Marshal(map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1000)})
	post := func(url, key string) (int, api.OpReply, error) {
		req, _ := http.NewRequest("POST", url+"/v1/checkout", bytes.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, api.OpReply{}, err
		}
		defer resp.Body.Close()
		var r api.OpReply
		json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, r, nil
	}
	var keys []string
	for round := range rounds {
		cmd, url := startCrashChild(t, dir)
		// A few checkouts answered, then more in flight when the kill lands.
		for i := range perRound / 3 {
			key := fmt.Sprintf("crash-%d-seq-%d", round, i)
			keys = append(keys, key)
			if status, r, err := post(url, key); err == nil && status == 200 {
				acked[key] = r.OpID
			}
		}
		var wg sync.WaitGroup
		answered := make(chan struct{}, perRound)
		for i := range perRound {
			key := fmt.Sprintf("crash-%d-%d", round, i)
			keys = append(keys, key)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if status, r, err := post(url, key); err == nil && status == 200 {
					mu.Lock()
					acked[key] = r.OpID
					mu.Unlock()
					answered <- struct{}{}
				}
			}()
		}
		select { // kill once the first concurrent answer is out, or soon
		case <-answered:
		case <-time.After(time.Duration(5+5*round) * time.Millisecond):
		}
		cmd.Process.Signal(syscall.SIGKILL)
		wg.Wait()
		cmd.Wait()
	}

	cmd, url := startCrashChild(t, dir)
	defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
	ops := map[string]string{}
	for _, key := range keys {
		status, r, err := post(url, key)
		if err != nil || status != 200 {
			t.Fatalf("retry of %s: status %d, err %v", key, status, err)
		}
		if want, ok := acked[key]; ok && r.OpID != want {
			t.Errorf("retry of acknowledged %s: got op %s, want the first answer %s", key, r.OpID, want)
		}
		if prev, dup := ops[r.OpID]; dup {
			t.Errorf("keys %s and %s got the same op %s", prev, key, r.OpID)
		}
		ops[r.OpID] = key
	}
	// Every checkout was one earn: the journal must hold exactly one op per key.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	h := agenttest.Start(t, agenttest.Options{StateDir: dir})
	journalOps := h.Ops(t)
	if len(journalOps) != len(keys) {
		t.Errorf("journal: got %d ops for %d keys, want one each", len(journalOps), len(keys))
	}
	seen := map[string]bool{}
	for _, op := range journalOps {
		seen[op.ID.String()] = true
	}
	for key, id := range acked {
		if !seen[id] {
			t.Errorf("op %s acknowledged for %s is not in the journal after SIGKILL", id, key)
		}
	}
	t.Logf("%d keys, %d acknowledged before a SIGKILL, %d ops in the journal", len(keys), len(acked), len(journalOps))
}
