package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/sync/batch"
	enrollclient "github.com/tillpoint/tillpoint/sync/enroll"
)

// A store whose roster the cloud seals and the agent's roster refresh
// takes (up to batch.MaxRosterBytes) must still let a till enroll: the
// code is spent by the time the client reads the reply. The client read
// at most 64 KiB of it, and in a store of about 700 tills or more the
// enrollment failed with its code spent (found by a review).
func TestEnrollInALargeStoreKeepsTheEnrollment(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, withCardKey)
	ctx := context.Background()
	now := ts.clock.Now()
	for i := range 800 { // well under batch.MaxRosterTerminals (1024)
		c, err := server.CreateEnrollCode(ctx, ts.ledger, "S1", fmt.Sprintf("S1-till-%04d", i), now, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if _, err := ts.ledger.Enroll(ctx, c.Code, cloud.TerminalKey{PublicKey: pub, KeyID: batch.Fingerprint(pub), Addr: fmt.Sprintf("10.1.%d.%d:7946", i/250, i%250+1)}, now); err != nil {
			t.Fatal(err)
		}
	}
	code := createCode(t, ts, "S1", "S1-till-new", 0)
	cl := enrollclient.NewClient()
	if _, err := cl.Enroll(ctx, ts.url, code, filepath.Join(t.TempDir(), "state")); err != nil {
		t.Fatalf("enroll in a store of 800 tills: %v", err)
	}
}
