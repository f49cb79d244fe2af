package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// A box key that is a low-order X25519 point is malformed input: it must
// get a 400 invalid_request, not a 500 (found by a review).
func TestRosterLowOrderBoxKeyIsA400(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, withCardKey)
	tm := enroll(t, ts, "S1", "T1")
	box := base64.RawURLEncoding.EncodeToString(make([]byte, 32)) // the all-zero point: low order
	status, h, body := send(t, signedGet(t, ts, tm, "/v1/roster?box="+box, ts.clock.Now()))
	wantProblem(t, status, h, body, http.StatusBadRequest, server.CodeInvalidRequest)
}

// One code, many enrollments at once: exactly one wins, on both backends.
func TestOneCodeRacedEnrollsOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ledger := open(t)
		ctx := context.Background()
		now := time.Now()
		c, err := server.CreateEnrollCode(ctx, ledger, "S1", "T1", now, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		const n = 16
		wins, refused := 0, 0
		for _, err := range enrollAtOnce(ledger, now, slices.Repeat([]string{c.Code}, n)) {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, cloud.ErrEnrollCode):
				refused++
			default:
				t.Errorf("enroll: %v", err)
			}
		}
		if wins != 1 || refused != n-1 {
			t.Errorf("%d enrollments with one code won, %d refused; want 1 and %d", wins, refused, n-1)
		}
	})
}

// A terminal name the admin API accepts must be one that can sign its
// feed requests: HTTP trims a header value's outer spaces, so a name like
// "T1 " enrolled but then never read its feeds (found by a review). Such
// a name is refused up front now.
func TestNameWithOuterSpacesIsRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, id := range []string{"T1 ", " T1"} {
		status, h, body := do(t, "POST", ts.url+"/v1/admin/enroll-codes", "application/json", "Bearer "+testAdminToken,
			mustJSON(t, server.EnrollCodeRequest{Store: "S1", Terminal: id}))
		wantProblem(t, status, h, body, http.StatusBadRequest, server.CodeInvalidRequest)
	}
}

// Concurrent first enrollments of a store's tills make one gossip key.
func TestConcurrentFirstEnrollmentsMakeOneGossipKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ledger := open(t)
		ctx := context.Background()
		now := time.Now()
		const n = 8
		codes := make([]string, n)
		for i := range codes {
			c, err := server.CreateEnrollCode(ctx, ledger, "S9", "T"+string(rune('a'+i)), now, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			codes[i] = c.Code
		}
		for _, err := range enrollAtOnce(ledger, now, codes) {
			if err != nil {
				t.Errorf("enroll: %v", err)
			}
		}
		sr, err := ledger.StoreRoster(ctx, "S9")
		if err != nil {
			t.Fatal(err)
		}
		if len(sr.GossipKeys) != 1 || len(sr.Terminals) != n {
			t.Errorf("store roster: %d gossip keys, %d terminals; want 1 and %d", len(sr.GossipKeys), len(sr.Terminals), n)
		}
	})
}

// A feed request naming a terminal that is not UTF-8 is malformed input
// from anyone: a 4xx on both backends, never a 500 (PostgreSQL answered
// 500, before any signature was checked; found by a review).
func TestFeedTerminalHeaderNotUTF8IsNotA500(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(testing.TB) *sqlstore.Store) {
		ts := newTestServerWith(t, open(t))
		req, err := http.NewRequest("GET", ts.url+"/v1/snapshots", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(batch.HeaderTerminal, "T\xff1")
		req.Header.Set(batch.HeaderTimestamp, fmt.Sprint(ts.clock.Now().Unix()))
		req.Header.Set(batch.HeaderSignature, base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize)))
		status, _, body := send(t, req)
		if status >= 500 {
			t.Errorf("GET /v1/snapshots as terminal %q: %d %s; want a 4xx", "T\xff1", status, body)
		}
	})
}

// Revoking a terminal expires the codes made for it before: a code that
// leaked with a stolen till does not bring it back. A code made after the
// revoke enrolls its replacement. (A review found the earlier code worked.)
func TestRevokeExpiresTheTerminalsEarlierCodes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	enroll(t, ts, "S1", "T1")
	leaked := createCode(t, ts, "S1", "T1", 0)
	if err := ts.ledger.RevokeTerminal(context.Background(), "T1", ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	body, _ := enrollBody(t, leaked)
	status, h, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body)
	wantProblem(t, status, h, reply, http.StatusForbidden, server.CodeEnrollCodeBad)
	ts.clock.Advance(time.Second)
	body, _ = enrollBody(t, createCode(t, ts, "S1", "T1", 0))
	if status, _, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body); status != http.StatusCreated {
		t.Fatalf("a replacement with a code made after the revoke: %d %s", status, reply)
	}
}

// enrollAtOnce enrolls a new key with each of codes, all at once, and
// returns each enrollment's error.
func enrollAtOnce(ledger *sqlstore.Store, now time.Time, codes []string) []error {
	errs := make([]error, len(codes))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, code := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				errs[i] = err
				return
			}
			<-start
			_, errs[i] = ledger.Enroll(context.Background(), code, cloud.TerminalKey{PublicKey: pub, KeyID: batch.Fingerprint(pub)}, now)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}
