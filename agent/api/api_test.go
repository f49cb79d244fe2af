package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/agent/api"
	"github.com/tillpoint/tillpoint/loyalty"
)

const cardA = "barcode:2012345678903"

// known puts a snapshot of card in the journal, as an ack would.
func known(t *testing.T, h *agenttest.Harness, card string, balance loyalty.Points, tier string, asOf time.Time) {
	t.Helper()
	c := agenttest.Card(t, card)
	h.PutSnapshot(t, loyalty.Snapshot{Card: c.Hash(agenttest.CardKey()), Member: "m1",
		Balance: balance, Tier: tier, NextTier: "Gold", ToNextTier: 1000 - balance, AsOf: asOf})
}

func problem(t *testing.T, body []byte) api.Problem {
	t.Helper()
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem details: %v in %s", err, body)
	}
	return p
}

func TestCheckoutEarnsForKnownCard(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	known(t, h, cardA, 100, "Silver", time.Now().Add(-time.Minute))
	var r api.OpReply
	status, body := h.Post(t, "/v1/checkout", "k1", map[string]any{"card": cardA,
		"basket": agenttest.Basket("milk", "dairy", 1250, "cigs", "tobacco", 900, "bread", "bakery", 399)}, &r)
	if status != 200 {
		t.Fatalf("status: got %d, want 200: %s", status, body)
	}
	if r.Points != 16 || r.Balance != 116 {
		t.Errorf("points and balance: got %d and %d, want 16 (16.49 EUR eligible, tobacco excluded) and 116", r.Points, r.Balance)
	}
	if len(r.Reasons) != 1 || r.Reasons[0].Code != "base" {
		t.Errorf("reasons: got %+v, want one base reason", r.Reasons)
	}
	if !r.Member.Known || r.Member.ID != "m1" || r.Member.Card != "barcode:••••8903" {
		t.Errorf("member: got %+v, want known m1 with masked card", r.Member)
	}
	if r.Offline {
		t.Errorf("offline: got true with the uplink online")
	}
	if strings.Contains(string(body), "2012345678903") {
		t.Errorf("reply holds the card in the clear: %s", body)
	}
	ops := h.Ops(t)
	if len(ops) != 1 || ops[0].ID.String() != r.OpID || ops[0].Points != 16 || ops[0].Kind != loyalty.OpEarn {
		t.Errorf("journal: got %+v, want the one earn of the reply", ops)
	}
}

// A POS app that retries gets the first answer and never earns twice.
func TestRetriedCheckoutNeverEarnsTwice(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	known(t, h, cardA, 0, "", time.Now())
	body := map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1000)}
	var first, second api.OpReply
	h.Post(t, "/v1/checkout", "retry-1", body, &first)
	req, _ := json.Marshal(body)
	hreq, _ := http.NewRequest("POST", h.URL+"/v1/checkout", strings.NewReader(string(req)))
	hreq.Header.Set("Idempotency-Key", "retry-1")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&second)
	resp.Body.Close()
	if resp.Header.Get("Idempotent-Replayed") != "true" || !second.Replayed {
		t.Errorf("replay: got header %q and replayed %v, want true", resp.Header.Get("Idempotent-Replayed"), second.Replayed)
	}
	if second.OpID != first.OpID || second.Points != first.Points || second.Balance != first.Balance {
		t.Errorf("replayed answer: got %+v, want the first %+v", second, first)
	}
	if n := len(h.Ops(t)); n != 1 {
		t.Errorf("journal: got %d ops, want 1", n)
	}
}

func TestConcurrentRetriesRecordOneOp(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	body := map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1000)}
	var wg sync.WaitGroup
	ids := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r api.OpReply
			if status, _ := h.Post(t, "/v1/checkout", "same-key", body, &r); status == 200 {
				ids <- r.OpID
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) > 1 {
		t.Errorf("op IDs: got %d different, want one", len(seen))
	}
	if n := len(h.Ops(t)); n != 1 {
		t.Errorf("journal: got %d ops, want 1", n)
	}
}

func TestKeyReusedForAnotherRequestIsRefused(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	h.Post(t, "/v1/checkout", "k", map[string]any{"card": cardA, "basket": agenttest.Basket("a", "x", 100)}, nil)
	status, body := h.Post(t, "/v1/checkout", "k", map[string]any{"card": cardA, "basket": agenttest.Basket("a", "x", 99999)}, nil)
	if p := problem(t, body); status != 422 || p.Code != "key_reused" {
		t.Errorf("got %d %+v, want 422 key_reused", status, p)
	}
	if n := len(h.Ops(t)); n != 1 {
		t.Errorf("journal: got %d ops, want 1", n)
	}
}

func TestPostWithoutIdempotencyKeyIsRefused(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	for _, path := range []string{"/v1/checkout", "/v1/redeem", "/v1/void", "/v1/enroll", "/v1/session", "/v1/quote"} {
		status, body := h.Post(t, path, "", map[string]any{}, nil)
		p := problem(t, body)
		if status != 400 || p.Status != 400 || !strings.Contains(p.Detail, "Idempotency-Key") || p.Type != api.ProblemTypeBase+"invalid" {
			t.Errorf("%s: got %d %+v, want 400 naming the Idempotency-Key", path, status, p)
		}
	}
}

// The reply comes only after the op is durable: a journal that fails gets
// a 503 and nothing is acknowledged; an ambiguous failure retried with the
// same key is recorded once.
func TestJournalFailureIsNeverAcknowledged(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	j := h.Journal
	body := map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1000)}

	j.SetFail(errors.New("disk full"), false)
	status, b := h.Post(t, "/v1/checkout", "f1", body, nil)
	if p := problem(t, b); status != 503 || p.Code != "unavailable" || !strings.Contains(p.Detail, "Nothing was recorded") {
		t.Errorf("got %d %+v, want 503 unavailable saying nothing was recorded", status, p)
	}
	if n := len(h.Ops(t)); n != 0 {
		t.Fatalf("journal: got %d ops, want 0", n)
	}

	j.SetFail(errors.New("i/o error after commit"), true)
	if status, _ := h.Post(t, "/v1/checkout", "f2", body, nil); status != 503 {
		t.Errorf("ambiguous failure: got %d, want 503", status)
	}
	j.SetFail(nil, false)
	var r api.OpReply
	if status, b := h.Post(t, "/v1/checkout", "f2", body, &r); status != 200 {
		t.Fatalf("retry: got %d %s, want 200", status, b)
	}
	ops := h.Ops(t)
	if len(ops) != 1 || ops[0].ID.String() != r.OpID {
		t.Errorf("journal: got %d ops, want the one op the retry answered", len(ops))
	}
}

func TestRedeemRefusalsSpeakToTheCashier(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	known(t, h, cardA, 120, "Silver", time.Now().Add(-time.Hour))
	known(t, h, "barcode:2099999999991", 500, "", time.Now().Add(-100*time.Hour))

	var r api.OpReply
	if status, b := h.Post(t, "/v1/redeem", "r1", map[string]any{"card": cardA, "reward": "coffee"}, &r); status != 200 {
		t.Fatalf("redeem: got %d %s", status, b)
	}
	if r.Points != -50 || r.Balance != 70 || r.Reward != "Free coffee" {
		t.Errorf("redeem: got points %d balance %d reward %q, want -50, 70, Free coffee", r.Points, r.Balance, r.Reward)
	}
	if status, b := h.Post(t, "/v1/redeem", "r2", map[string]any{"card": cardA, "reward": "coffee"}, nil); status != 200 {
		t.Fatalf("second redeem: got %d %s", status, b)
	}
	cases := []struct {
		name, card, reward string
		offline            bool
		status             int
		code, detail       string
	}{
		{"insufficient", cardA, "coffee", false, 422, "insufficient_points", "the card has 20"},
		{"unknown card", "nfc:04A1B2C3D4E5F6", "coffee", true, 422, "unknown_card", "not known"},
		{"snapshot too old offline", "barcode:2099999999991", "coffee", true, 422, "snapshot_too_old", "last confirmed 4 days ago"},
		{"no such reward", cardA, "yacht", false, 404, "not_found", "no reward"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.Uplink.Set(agent.SyncState{Online: !tc.offline})
			status, b := h.Post(t, "/v1/redeem", "rc"+string(rune('a'+i)), map[string]any{"card": tc.card, "reward": tc.reward}, nil)
			p := problem(t, b)
			if status != tc.status || p.Code != tc.code || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("got %d %+v, want %d %s with %q", status, p, tc.status, tc.code, tc.detail)
			}
		})
	}
}

func TestOfflineCapRefusesWhatItMust(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	h.Uplink.Set(agent.SyncState{Online: false})
	known(t, h, cardA, 10000, "", time.Now().Add(-time.Hour))
	var ok, refused int
	for i := range 12 {
		status, b := h.Post(t, "/v1/redeem", "cap"+string(rune('a'+i)), map[string]any{"card": cardA, "reward": "coffee"}, nil)
		switch {
		case status == 200:
			ok++
		case problem(t, b).Code == "offline_cap_reached":
			refused++
		default:
			t.Fatalf("got %d %s", status, b)
		}
	}
	if ok != 10 || refused != 2 {
		t.Errorf("got %d redeemed and %d refused, want 10 (500-point cap / 50) and 2", ok, refused)
	}
}

func TestVoidClawsBackOnce(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	known(t, h, cardA, 0, "", time.Now().Add(-time.Minute))
	var sale, void api.OpReply
	h.Post(t, "/v1/checkout", "s1", map[string]any{"card": cardA, "basket": agenttest.Basket("tv", "electronics", 49900)}, &sale)
	if status, b := h.Post(t, "/v1/void", "v1", map[string]any{"op": sale.OpID, "reason": "returned"}, &void); status != 200 {
		t.Fatalf("void: got %d %s", status, b)
	}
	if void.Points != -499 || void.Reverses != sale.OpID || void.Balance != 0 {
		t.Errorf("void: got points %d reverses %s balance %d, want -499, %s, 0", void.Points, void.Reverses, void.Balance, sale.OpID)
	}
	status, b := h.Post(t, "/v1/void", "v2", map[string]any{"op": sale.OpID}, nil)
	if p := problem(t, b); status != 409 || p.Code != "already_reversed" {
		t.Errorf("second void: got %d %+v, want 409 already_reversed", status, p)
	}
	status, b = h.Post(t, "/v1/void", "v3", map[string]any{"op": "0191c2a4-7b3e-7c00-8000-000000000000"}, nil)
	if p := problem(t, b); status != 404 || p.Code != "not_found" {
		t.Errorf("void of an unknown op: got %d %+v, want 404", status, p)
	}
	if n := len(h.Ops(t)); n != 2 {
		t.Errorf("journal: got %d ops, want sale and one void", n)
	}
}

func TestEnrollLinksNewCard(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	var r api.OpReply
	if status, b := h.Post(t, "/v1/enroll", "e1", map[string]any{"card": "nfc:04A1B2C3D4E5F6"}, &r); status != 200 {
		t.Fatalf("enroll: got %d %s", status, b)
	}
	if r.Kind != "enroll" || !strings.HasPrefix(r.Member.ID, "m-") || r.Member.Card != "nfc:••••E5F6" || r.Tier != "Silver" {
		t.Errorf("enroll: got %+v", r)
	}
	ops := h.Ops(t)
	if len(ops) != 1 || ops[0].Kind != loyalty.OpEnroll || string(ops[0].Member) != r.Member.ID {
		t.Errorf("journal: got %+v", ops)
	}
	known(t, h, cardA, 5, "", time.Now())
	status, b := h.Post(t, "/v1/enroll", "e2", map[string]any{"card": cardA}, nil)
	if p := problem(t, b); status != 409 || p.Code != "conflict" {
		t.Errorf("enroll of a member's card: got %d %+v, want 409", status, p)
	}
}

func TestUnknownCardEarnsWithNotice(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	h.Uplink.Set(agent.SyncState{Online: false})
	var r api.OpReply
	h.Post(t, "/v1/checkout", "u1", map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 500)}, &r)
	if r.Member.Known || r.Points != 5 || !r.Offline {
		t.Errorf("got %+v, want 5 points, unknown member, offline", r)
	}
	if want := "Card not known offline: points will be added when the store is back online."; r.Notice != want {
		t.Errorf("notice: got %q, want %q", r.Notice, want)
	}
}

func TestSessionCardIsUsedAndClosedByCheckout(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	known(t, h, cardA, 40, "Silver", time.Now())
	var s agent.SessionView
	if status, b := h.Post(t, "/v1/session", "s", map[string]any{"card": cardA}, &s); status != 200 {
		t.Fatalf("session: %d %s", status, b)
	}
	if !s.Open || !s.Known || s.Balance != 40 || s.Source != "api" {
		t.Errorf("session: got %+v", s)
	}
	var r api.OpReply
	h.Post(t, "/v1/checkout", "c", map[string]any{"basket": agenttest.Basket("milk", "dairy", 300)}, &r)
	if r.Member.Card != "barcode:••••8903" || r.Balance != 43 {
		t.Errorf("checkout: got card %q balance %d, want the session's card and 43", r.Member.Card, r.Balance)
	}
	var after agent.SessionView
	h.Get(t, "/v1/session", &after)
	if after.Open {
		t.Errorf("session after checkout: got open, want closed")
	}
}

func TestCardlessCheckoutEarnsWithoutCard(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	var r api.OpReply
	if status, b := h.Post(t, "/v1/checkout", "nc", map[string]any{"basket": agenttest.Basket("milk", "dairy", 300)}, &r); status != 200 {
		t.Fatalf("got %d %s", status, b)
	}
	ops := h.Ops(t)
	if len(ops) != 1 || !ops[0].Card.IsZero() || ops[0].Points != 3 {
		t.Errorf("journal: got %+v, want one cardless earn of 3", ops)
	}
}

func TestBadRequestsAreSpecific(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	cases := []struct {
		name, path string
		body       any
		status     int
		detail     string
	}{
		{"unknown field", "/v1/checkout", map[string]any{"basket": agenttest.Basket("a", "b", 1), "crad": "x"}, 400, "unknown field"},
		{"bad card", "/v1/checkout", map[string]any{"card": "visa:4111", "basket": agenttest.Basket("a", "b", 1)}, 400, "cannot be read"},
		{"empty basket", "/v1/checkout", map[string]any{"basket": map[string]any{"currency": "EUR"}}, 400, "no lines"},
		{"wrong currency", "/v1/checkout", map[string]any{"basket": map[string]any{"currency": "USD", "lines": []any{map[string]any{"sku": "a", "quantity": 1, "amount": 1}}}}, 400, "USD"},
		{"bad op id", "/v1/void", map[string]any{"op": "yesterday"}, 400, "op ID"},
		{"enroll without card", "/v1/enroll", map[string]any{}, 422, "No card"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, b := h.Post(t, tc.path, "bad"+string(rune('a'+i)), tc.body, nil)
			if p := problem(t, b); status != tc.status || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("got %d %q, want %d containing %q", status, p.Detail, tc.status, tc.detail)
			}
		})
	}
	if n := len(h.Ops(t)); n != 0 {
		t.Errorf("journal: got %d ops after bad requests, want 0", n)
	}
}

func TestMemberLookup(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	known(t, h, cardA, 250, "Silver", time.Now())
	var m agent.MemberView
	if status, b := h.Get(t, "/v1/members/"+cardA, &m); status != 200 {
		t.Fatalf("got %d %s", status, b)
	}
	if !m.Known || m.Balance != 250 || m.Tier != "Silver" || m.Card != "barcode:••••8903" {
		t.Errorf("got %+v", m)
	}
	if status, _ := h.Get(t, "/v1/members/nfc:zz", nil); status != 400 {
		t.Errorf("bad card: got %d, want 400", status)
	}
}

func TestIdempotencyRecordSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	body := map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1000)}
	var first api.OpReply
	h := agenttest.Start(t, agenttest.Options{StateDir: dir})
	h.Post(t, "/v1/checkout", "restart", body, &first)
	h.Close(t)

	h = agenttest.Start(t, agenttest.Options{StateDir: dir})
	var second api.OpReply
	h.Post(t, "/v1/checkout", "restart", body, &second)
	if !second.Replayed || second.OpID != first.OpID {
		t.Errorf("after restart: got op %s replayed %v, want %s replayed", second.OpID, second.Replayed, first.OpID)
	}
	if n := len(h.Ops(t)); n != 1 {
		t.Errorf("journal: got %d ops, want 1", n)
	}
}

// The idempotency record of a checkout is committed with its op in the
// journal, not in the agent's own database: losing that database (a power
// cut before its pages reached the disk) must not let a retry earn twice.
func TestCheckoutRecordLivesWithItsOpInTheJournal(t *testing.T) {
	dir := t.TempDir()
	body := map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1000)}
	var first api.OpReply
	h := agenttest.Start(t, agenttest.Options{StateDir: dir})
	known(t, h, cardA, 0, "", time.Now())
	h.Post(t, "/v1/checkout", "lost-db", body, &first)
	h.Close(t)
	for _, name := range []string{"agent.db", "agent.db-wal", "agent.db-shm"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("remove %s: %v", name, err)
		}
	}

	h = agenttest.Start(t, agenttest.Options{StateDir: dir})
	var second api.OpReply
	h.Post(t, "/v1/checkout", "lost-db", body, &second)
	if !second.Replayed || second.OpID != first.OpID || second.Points != first.Points {
		t.Errorf("retry without the agent's database: got op %s points %d replayed %v, want op %s points %d replayed",
			second.OpID, second.Points, second.Replayed, first.OpID, first.Points)
	}
	if n := len(h.Ops(t)); n != 1 {
		t.Errorf("journal: got %d ops, want 1", n)
	}
	other := map[string]any{"card": cardA, "basket": agenttest.Basket("bread", "bakery", 500)}
	req, _ := json.Marshal(other)
	hreq, _ := http.NewRequest("POST", h.URL+"/v1/checkout", strings.NewReader(string(req)))
	hreq.Header.Set("Idempotency-Key", "lost-db")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("key reused for another basket: got status 200, want a refusal")
	}

	// A void finds the sale in the journal.
	var void api.OpReply
	if status, b := h.Post(t, "/v1/void", "lost-db-void", map[string]any{"op": first.OpID}, &void); status != 200 {
		t.Fatalf("void: got %d %s, want 200", status, b)
	}
	if void.Points != -first.Points {
		t.Errorf("void: got %d points, want %d", void.Points, -first.Points)
	}
}

func TestEventsStreamStartsWithStateThenSessions(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.URL+"/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type: got %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() (string, string) {
		var typ, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && typ != "":
				return typ, data
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return "", ""
	}
	if typ, data := next(); typ != "state" || !strings.Contains(data, `"terminal":"T1"`) {
		t.Errorf("first event: got %s %s, want the state", typ, data)
	}
	h.Agent.PresentCard(ctx, agenttest.Card(t, cardA), agent.SourceNFC)
	// Sync and device events may come at any time; the session must follow.
	typ, data := next()
	for i := 0; i < 10 && typ != "session"; i++ {
		typ, data = next()
	}
	if typ != "session" || !strings.Contains(data, `"source":"nfc"`) || !strings.Contains(data, "••••8903") {
		t.Errorf("got %s %s, want the session with the masked card", typ, data)
	}
	if strings.Contains(data, "2012345678903") {
		t.Errorf("event holds the card in the clear: %s", data)
	}
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if status, b := h.Get(t, "/v1/openapi.json", &doc); status != 200 {
		t.Fatalf("got %d %s", status, b)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: got %q, want 3.x", doc.OpenAPI)
	}
	routes := []string{"POST /v1/checkout", "POST /v1/quote", "POST /v1/redeem", "POST /v1/void", "POST /v1/enroll",
		"POST /v1/session", "GET /v1/session", "DELETE /v1/session", "GET /v1/members/{card}", "GET /v1/status",
		"GET /v1/events", "GET /v1/openapi.json", "GET /v1/receipts/{op}/preview.png"}
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("%s is served but not documented", r)
		}
		// And every documented route is served (not a 404 from the mux).
		req, _ := http.NewRequest(method, h.URL+strings.ReplaceAll(path, "{card}", cardA), nil)
		if method == "GET" && path == "/v1/events" {
			continue
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 404 || resp.StatusCode == 405 {
			t.Errorf("%s: got %d, want it served", r, resp.StatusCode)
		}
	}
	n := 0
	for _, ops := range doc.Paths {
		n += len(ops)
	}
	if n != len(routes) {
		t.Errorf("documented operations: got %d, want %d", n, len(routes))
	}
}

func TestMetricsCountOps(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	h.Post(t, "/v1/checkout", "m1", map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1000)}, nil)
	h.Post(t, "/v1/redeem", "m2", map[string]any{"card": cardA, "reward": "coffee"}, nil)
	_, b := h.Get(t, "/metrics", nil)
	for _, want := range []string{
		`tillpoint_ops_total{kind="earn",outcome="ok"} 1`,
		`tillpoint_ops_total{kind="redeem",outcome="refused"} 1`,
		`tillpoint_journal_append_seconds_count 1`,
		`tillpoint_sync_online 1`,
		`tillpoint_rules_version 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
}

// A checkout's retry is answered from the journal even when the request
// would now be refused (here the program changed currency): the POS gets
// the answer its sale was recorded with, never a refusal of a sale that
// counted, and nothing is stored over the record.
func TestRetriedCheckoutIsAnsweredEvenWhenItWouldNowBeRefused(t *testing.T) {
	h := agenttest.Start(t, agenttest.Options{})
	known(t, h, cardA, 0, "", time.Now())
	body := map[string]any{"card": cardA, "basket": agenttest.Basket("milk", "dairy", 1000)}
	var first api.OpReply
	if code, b := h.Post(t, "/v1/checkout", "retry-rules", body, &first); code != 200 {
		t.Fatalf("checkout: %d %s", code, b)
	}
	usd := agenttest.Rules()
	usd.Version, usd.Currency = 2, "USD"
	if err := h.Agent.SetRules(context.Background(), usd); err != nil {
		t.Fatal(err)
	}
	if code, b := h.Post(t, "/v1/checkout", "fresh-key", body, nil); code == 200 {
		t.Fatalf("a new EUR checkout under USD rules: got 200 %s, want a refusal (the premise of this test)", b)
	}
	for i := range 2 {
		var again api.OpReply
		code, b := h.Post(t, "/v1/checkout", "retry-rules", body, &again)
		if code != 200 || !again.Replayed || again.OpID != first.OpID || again.Points != first.Points {
			t.Fatalf("retry %d: got %d %s, want the first answer replayed", i, code, b)
		}
	}
	if n := len(h.Ops(t)); n != 1 {
		t.Errorf("journal: got %d ops, want 1", n)
	}
}
