package server_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// signedGet builds a GET signed by tm at the server's clock.
func signedGet(t testing.TB, ts *testServer, tm *terminal, pathQuery string, at time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", ts.url+pathQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	unix := at.Unix()
	sig := ed25519.Sign(tm.key, batch.RequestSigningMessage(testProgram, "GET", req.URL.RequestURI(), tm.id, unix))
	req.Header.Set(batch.HeaderTerminal, tm.id)
	req.Header.Set(batch.HeaderTimestamp, strconv.FormatInt(unix, 10))
	req.Header.Set(batch.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return req
}

func publishRules(t *testing.T, ts *testServer, version uint32) {
	t.Helper()
	r := loyalty.Rules{Version: version, Program: testProgram, Currency: "EUR", BasePoints: 1, BasePer: 100}
	if err := ts.ledger.PublishRules(context.Background(), r, ts.clock.Now()); err != nil {
		t.Fatalf("publish rules: %v", err)
	}
}

func TestRulesAreServedSigned(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tm := enroll(t, ts, "S1", "T1")
	status, h, body := send(t, signedGet(t, ts, tm, "/v1/rules", ts.clock.Now()))
	wantProblem(t, status, h, body, http.StatusNotFound, server.CodeNoRules)

	publishRules(t, ts, 3)
	status, h, body = send(t, signedGet(t, ts, tm, "/v1/rules", ts.clock.Now()))
	if status != http.StatusOK || h.Get("Content-Type") != batch.ContentType {
		t.Fatalf("rules: %d %q %q, want 200 %q", status, h.Get("Content-Type"), body, batch.ContentType)
	}
	doc, err := batch.OpenRules(body, testProgram, ts.Key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("open rules: %v", err)
	}
	if doc.Rules.Version != 3 || doc.Rules.Program != testProgram {
		t.Errorf("rules version %d program %q, want 3 %q", doc.Rules.Version, doc.Rules.Program, testProgram)
	}
}

func TestSnapshotsAreServedSignedForTheCallersStoreInPages(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	publishRules(t, ts, 1)
	a := enroll(t, ts, "S1", "T1")
	b := enroll(t, ts, "S1", "T2")
	elsewhere := enroll(t, ts, "S2", "T3")
	for _, tm := range []*terminal{a, b, elsewhere} {
		if status, _, body := post(t, ts, tm.seal(t, 2).Bytes); status != http.StatusOK {
			t.Fatalf("post from %s: %d %s", tm.id, status, body)
		}
	}
	cloudKey := ts.Key.Public().(ed25519.PublicKey)

	var got []loyalty.Snapshot
	path := "/v1/snapshots?limit=1"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatalf("more pages than cards")
		}
		status, h, body := send(t, signedGet(t, ts, a, path, ts.clock.Now()))
		if status != http.StatusOK {
			t.Fatalf("snapshots: %d %s", status, body)
		}
		_ = h
		set, err := batch.OpenSnapshots(body, testProgram, cloudKey)
		if err != nil {
			t.Fatalf("open snapshots: %v", err)
		}
		if set.Store != "S1" || set.RulesVersion != 1 {
			t.Errorf("set store %q rules %d, want S1 1", set.Store, set.RulesVersion)
		}
		got = append(got, set.Snapshots...)
		if set.Next == "" {
			break
		}
		path = "/v1/snapshots?limit=1&after=" + set.Next
	}
	cards := map[loyalty.CardHash]bool{}
	for _, s := range got {
		cards[s.Card] = true
		if s.Balance != 20 || s.Allowance == nil {
			t.Errorf("snapshot %s balance %d allowance %v, want 20 with an allowance", s.Card.Short(), s.Balance, s.Allowance)
		}
	}
	if len(got) != 2 || !cards[a.card] || !cards[b.card] || cards[elsewhere.card] {
		t.Errorf("store S1 got %d snapshots (a %v, b %v, other store's %v), want exactly its two cards", len(got), cards[a.card], cards[b.card], cards[elsewhere.card])
	}
}

func TestFeedsNeedAValidTerminalSignature(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	publishRules(t, ts, 1)
	tm := enroll(t, ts, "S1", "T1")
	other := enroll(t, ts, "S1", "T2")
	revoked := enroll(t, ts, "S1", "T3")
	if err := ts.ledger.RevokeTerminal(context.Background(), revoked.id, ts.clock.Now()); err != nil {
		t.Fatal(err)
	}
	now := ts.clock.Now()

	unsigned, _ := http.NewRequest("GET", ts.url+"/v1/rules", nil)
	wrongKey := signedGet(t, ts, &terminal{id: tm.id, key: other.key}, "/v1/rules", now)
	otherPath := signedGet(t, ts, tm, "/v1/snapshots", now)
	otherPath.URL.Path = "/v1/rules"
	stale := signedGet(t, ts, tm, "/v1/rules", now.Add(-time.Hour))
	cases := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"unsigned", unsigned, http.StatusUnauthorized, server.CodeUnauthorized},
		{"another terminal's key", wrongKey, http.StatusForbidden, server.CodeBadSignature},
		{"signature for another path", otherPath, http.StatusForbidden, server.CodeBadSignature},
		{"an hour old", stale, http.StatusForbidden, server.CodeBadSignature},
		{"revoked terminal", signedGet(t, ts, revoked, "/v1/snapshots", now), http.StatusForbidden, server.CodeTerminalRevoked},
		{"revoked terminal, another key", signedGet(t, ts, &terminal{id: revoked.id, key: tm.key}, "/v1/snapshots", now), http.StatusForbidden, server.CodeBadSignature},
		{"unknown terminal", signedGet(t, ts, &terminal{id: "T9", key: tm.key}, "/v1/snapshots", now), http.StatusForbidden, server.CodeUnknownTerminal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, h, body := send(t, c.req)
			wantProblem(t, status, h, body, c.status, c.code)
		})
	}
}

func TestRulesPublishedThroughTheAdminAPIAreServed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tm := enroll(t, ts, "S1", "T1")
	rules := loyalty.Rules{Version: 2, Program: testProgram, Currency: "EUR", BasePoints: 1, BasePer: 100}
	publish := func(r loyalty.Rules, auth string) (int, http.Header, []byte) {
		return do(t, "POST", ts.url+"/v1/admin/rules", "application/json", auth, mustJSON(t, r))
	}
	admin := "Bearer " + testAdminToken

	status, h, body := publish(rules, "")
	wantProblem(t, status, h, body, http.StatusUnauthorized, server.CodeUnauthorized)
	if status, _, body := publish(rules, admin); status != http.StatusOK {
		t.Fatalf("publish: %d %s", status, body)
	}
	if status, _, body := publish(rules, admin); status != http.StatusOK {
		t.Fatalf("publishing the same version again: %d %s, want 200 (a no-op)", status, body)
	}
	changed := rules
	changed.BasePoints = 5
	status, h, body = publish(changed, admin)
	wantProblem(t, status, h, body, http.StatusConflict, server.CodeRulesConflict)
	other := rules
	other.Version, other.Program = 3, "another-program"
	status, h, body = publish(other, admin)
	wantProblem(t, status, h, body, http.StatusUnprocessableEntity, server.CodeInvalidRules)
	broken := rules
	broken.Version, broken.BasePer = 3, 0
	status, h, body = publish(broken, admin)
	wantProblem(t, status, h, body, http.StatusUnprocessableEntity, server.CodeInvalidRules)

	status, _, body = send(t, signedGet(t, ts, tm, "/v1/rules", ts.clock.Now()))
	if status != http.StatusOK {
		t.Fatalf("rules: %d %s", status, body)
	}
	doc, err := batch.OpenRules(body, testProgram, ts.Key.Public().(ed25519.PublicKey))
	if err != nil || doc.Rules.Version != 2 || doc.Rules.BasePoints != 1 {
		t.Fatalf("served rules %+v (err %v), want version 2 as first published", doc, err)
	}
}

// applyHook is a real ledger that runs during before each Apply, while the
// server is applying the batch.
type applyHook struct {
	*sqlstore.Store
	during func()
}

func (l *applyHook) Apply(ctx context.Context, b cloud.Batch) (cloud.Applied, error) {
	if l.during != nil {
		l.during()
	}
	return l.Store.Apply(ctx, b)
}

// A till keeps, per card, the snapshot with the latest AsOf and counts its
// acknowledged ops as included in it. A feed page read while a batch was
// being applied holds the balance from before the batch; if it carried a
// later AsOf than the batch's ack, the till would keep it and lose the
// batch's points from the balance it prints (invariant 3 at the till).
func TestAckSnapshotsAreStampedAfterFeedsReadDuringTheApply(t *testing.T) {
	t.Parallel()
	hook := &applyHook{Store: openTestLedger(t)}
	ts := newTestServerWith(t, hook.Store, func(s *server.Server) { s.Ledger = hook })
	publishRules(t, ts, 1)
	tm := enroll(t, ts, "S1", "T1")
	if status, _, body := post(t, ts, tm.seal(t, 2).Bytes); status != http.StatusOK {
		t.Fatalf("first batch: %d %s", status, body)
	}

	cloudKey := ts.Key.Public().(ed25519.PublicKey)
	var during *batch.SnapshotSet
	hook.during = func() {
		ts.clock.Advance(time.Second) // the apply takes a while
		status, _, body := send(t, signedGet(t, ts, tm, "/v1/snapshots", ts.clock.Now()))
		if status != http.StatusOK {
			t.Errorf("snapshots during the apply: %d %s", status, body)
			return
		}
		set, err := batch.OpenSnapshots(body, testProgram, cloudKey)
		if err != nil {
			t.Errorf("open snapshots: %v", err)
			return
		}
		during = set
	}
	status, h, body := post(t, ts, tm.seal(t, 3).Bytes)
	if status != http.StatusOK {
		t.Fatalf("second batch: %d %s", status, body)
	}
	ack := openAck(t, ts, h, body)
	if during == nil || len(during.Snapshots) != 1 || len(ack.Snapshots) != 1 {
		t.Fatalf("got feed %+v and ack snapshots %+v, want one snapshot of the card in each", during, ack.Snapshots)
	}
	read, acked := during.Snapshots[0], ack.Snapshots[0]
	if read.Balance != 20 || acked.Balance != 50 {
		t.Fatalf("balances: feed read during the apply %d, ack %d; want 20 and 50", read.Balance, acked.Balance)
	}
	if !acked.AsOf.After(read.AsOf) {
		t.Errorf("the ack's snapshot (balance %d) is as of %v, not after the feed's older one (balance %d) as of %v: a till would keep the older balance",
			acked.Balance, acked.AsOf, read.Balance, read.AsOf)
	}
}
