package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
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

// A known route asked with another method is 405 Method Not Allowed with
// an Allow header (RFC 9110 15.5.6), not 404 "no route": the catch-all "/"
// swallows what net/http's mux would answer 405.
func TestWrongMethodOnAKnownRouteIs405(t *testing.T) {
	ts := newTestServer(t)
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/v1/batches", "POST"},
		{"GET", "/v1/enroll", "POST"},
		{"POST", "/v1/rules", "GET"},
	} {
		status, h, body := do(t, c.method, ts.url+c.path, "", "", nil)
		if status != http.StatusMethodNotAllowed || !strings.Contains(h.Get("Allow"), c.allow) {
			t.Errorf("%s %s: %d (Allow %q) %s; want 405 with Allow: %s", c.method, c.path, status, h.Get("Allow"), body, c.allow)
		}
	}
}

// A JSON body over the cap is 413 body_too_large, as a batch over its cap
// is: a valid document followed by padding past MaxJSONBytes gets 400
// "data after its JSON document" instead, because the cap is hit only by
// the trailing-data check.
func TestOversizedJSONBodyIs413(t *testing.T) {
	ts := newTestServer(t)
	body := append([]byte(`{"code":"X"}`), bytes.Repeat([]byte(" "), 70<<10)...)
	status, h, reply := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", body)
	wantProblem(t, status, h, reply, http.StatusRequestEntityTooLarge, "body_too_large")
}

// A terminal's unsigned feed request is told it is unauthorized with the
// admin API's title and challenge ("Admin token missing or wrong",
// WWW-Authenticate: Bearer realm="tillpoint-admin"): a till has no admin
// token, and the operator reading it looks in the wrong place.
func TestUnsignedFeedIsNotAnAdminTokenProblem(t *testing.T) {
	ts := newTestServer(t)
	status, h, body := do(t, "GET", ts.url+"/v1/rules", "", "", nil)
	p := wantProblem(t, status, h, body, http.StatusUnauthorized, "unauthorized")
	if strings.Contains(p.Title, "Admin") || strings.Contains(h.Get("WWW-Authenticate"), "admin") {
		t.Errorf("unsigned GET /v1/rules answered with title %q and WWW-Authenticate %q: a terminal's request is not an admin one", p.Title, h.Get("WWW-Authenticate"))
	}
}

// 'tillpoint cloud rotate-gossip-key --help' says "The same is POST
// /v1/admin/stores/S/gossip-key on a running cloud", and the package doc
// "rotate the store's gossip key, or {"finish":true}": a plain POST with
// the token (no body) is refused 415, and with a JSON content type but no
// body 400 "EOF". An empty body should rotate.
func TestGossipKeyRotationTakesAnEmptyPOST(t *testing.T) {
	ts := newTestServer(t)
	enroll(t, ts, "S1", "T1")
	for _, ct := range []string{"", "application/json"} {
		status, _, body := do(t, "POST", ts.url+"/v1/admin/stores/S1/gossip-key", ct, "Bearer "+testAdminToken, nil)
		if status != http.StatusOK {
			t.Errorf("empty POST (Content-Type %q): %d %s, want 200 and a rotation", ct, status, body)
		}
	}
}
