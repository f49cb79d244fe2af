package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
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

// A store holds at most as many terminals as its signed roster carries:
// the next enrollment is refused (400), and the
// store's roster still serves. A 1,025th terminal used to make every
// till's GET /v1/roster in the store answer 500 (found by a review).
func TestFullStoreRefusesTheNextTerminal(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, withCardKey)
	ctx := context.Background()
	now := ts.clock.Now()
	for i := range cloud.MaxStoreTerminals - 1 {
		c, err := server.CreateEnrollCode(ctx, ts.ledger, "S1", fmt.Sprintf("S1-till-%04d", i), now, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		if _, err := ts.ledger.Enroll(ctx, c.Code, cloud.TerminalKey{PublicKey: pub, KeyID: batch.Fingerprint(pub)}, now); err != nil {
			t.Fatal(err)
		}
	}
	over, err := server.CreateEnrollCode(ctx, ts.ledger, "S1", "S1-till-over", now, now.Add(time.Hour)) // made while there was room
	if err != nil {
		t.Fatal(err)
	}
	last := enroll(t, ts, "S1", "S1-till-last") // the store's 1,024th
	// The operator is told when making a code...
	status, h, reply := do(t, "POST", ts.url+"/v1/admin/enroll-codes", "application/json", "Bearer "+testAdminToken,
		mustJSON(t, server.EnrollCodeRequest{Store: "S1", Terminal: "S1-till-other"}))
	wantProblem(t, status, h, reply, http.StatusBadRequest, server.CodeInvalidRequest)
	// ...and a code made before the store filled up does not enroll.
	body, _ := enrollBody(t, over.Code)
	status, h, reply = do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body)
	wantProblem(t, status, h, reply, http.StatusBadRequest, server.CodeInvalidRequest)
	if status, _, reply := send(t, signedGet(t, ts, last, "/v1/roster", ts.clock.Now())); status != http.StatusOK {
		t.Errorf("GET /v1/roster of the full store: %d %s", status, reply)
	}
	// A till replacing one of the store's enrolls under its ID.
	repl := createCode(t, ts, "S1", "S1-till-0007", 0)
	body, _ = enrollBody(t, repl)
	if status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body); status != http.StatusCreated {
		t.Errorf("a replacement under an enrolled ID of the full store: %d %s", status, reply)
	}
}
