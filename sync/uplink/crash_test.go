package uplink_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// The uplink process is killed (SIGKILL) after the cloud applied its batch
// and before the ack reached it. The restarted uplink finds the sealed
// batch in the journal's outbox, resends the same bytes, gets the
// duplicate's ack: no op lost, none applied twice.
func TestKilledBetweenSendAndAck(t *testing.T) {
	if os.Getenv("TILLPOINT_UPLINK_CHILD") != "" {
		t.Skip("runs as the parent only")
	}
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 42
	term, err := batch.NewSigner("T-01", program, ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	cloud := newSigner(t, batch.CloudSigner)
	ledger := newStubLedger(t, cloud)
	ledger.keys["T-01"] = term.Public()
	applied := make(chan struct{})
	var hang atomic.Bool
	hang.Store(true)
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hang.Load() {
			ledger.ServeHTTP(w, r)
			return
		}
		ledger.ServeHTTP(httptestDiscard{}, r) // applied; the ack never leaves
		select {
		case applied <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))

	path := filepath.Join(t.TempDir(), "T-01.db")
	j := openJournalAt(t, path, "T-01")
	ops := appendOps(t, j, earns(0, 100, 5))
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	runChildUntilApplied(t, "TestUplinkChildProcess", applied, 20*time.Second,
		"CHILD_JOURNAL="+path, "CHILD_URL="+url, "CHILD_SEED="+hex.EncodeToString(seed), "CHILD_CLOUD="+hex.EncodeToString(cloud.Public()))

	hang.Store(false)
	j = openJournalAt(t, path, "T-01")
	sealed, err := j.Sealed(context.Background())
	if err != nil || len(sealed) != 1 {
		t.Fatalf("outbox after the kill: got %d sealed batches (%v), want 1", len(sealed), err)
	}
	if e, s, _ := j.Acked(context.Background()); e != 0 || s != 0 {
		t.Fatalf("watermark after the kill: got %d/%d, want 0/0 (the ack never arrived)", e, s)
	}
	cfg := fastConfig(url, term, cloud.Public(), t)
	u := mustUplink(t, j, cfg)
	syncWithin(t, u, 20*time.Second)
	ledger.check(t, ops)
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	if len(ledger.posts) < 2 || !bytes.Equal(ledger.posts[0], ledger.posts[1]) {
		t.Errorf("the restarted uplink did not resend the first batch's exact bytes")
	}
}

// TestUplinkChildProcess is the uplink process that
// TestKilledBetweenSendAndAck kills; it does nothing in a normal run.
func TestUplinkChildProcess(t *testing.T) {
	if os.Getenv("TILLPOINT_UPLINK_CHILD") == "" {
		t.Skip("only runs as TestKilledBetweenSendAndAck's child process")
	}
	seed, _ := hex.DecodeString(os.Getenv("CHILD_SEED"))
	cloud, _ := hex.DecodeString(os.Getenv("CHILD_CLOUD"))
	term, err := batch.NewSigner("T-01", program, ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	j := openJournalAt(t, os.Getenv("CHILD_JOURNAL"), "T-01")
	cfg := fastConfig(os.Getenv("CHILD_URL"), term, cloud, t)
	cfg.RequestTimeout = time.Minute
	u := mustUplink(t, j, cfg)
	u.Sync(context.Background()) // killed in the middle
}

// runChildUntilApplied re-executes this test binary as an uplink child
// process running test run with env, waits until the cloud has applied a
// batch from it (applied), and SIGKILLs it there: between send and ack.
func runChildUntilApplied(t *testing.T, run string, applied <-chan struct{}, wait time.Duration, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), "TILLPOINT_UPLINK_CHILD=1"), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-applied:
	case <-time.After(wait):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the cloud never applied a batch from the child:\n%s", out.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}
