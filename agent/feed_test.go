package agent_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// TestFeedRefusesAnotherStoresSnapshots: the snapshot feed of till T1
// of store S1 answers with a page the cloud signed for store S2 (a replayed
// or misrouted response: the signature is the cloud's, the program is
// right). Allowances are per store: the page must be refused, and nothing
// of it stored.
func TestFeedRefusesAnotherStoresSnapshots(t *testing.T) {
	ctx := context.Background()
	h := agenttest.Start(t, agenttest.Options{}) // terminal T1 of store S1
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := batch.NewSigner(batch.CloudSigner, "test", key)
	if err != nil {
		t.Fatal(err)
	}
	card := agenttest.Card(t, "barcode:2012345678903").Hash(agenttest.CardKey())
	now := time.Now().UTC().Truncate(time.Microsecond)
	store := "S2" // what the cloud signs the page for
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		var err error
		switch r.URL.Path {
		case "/v1/rules":
			body, err = cloud.SealRules(agenttest.Rules(), now)
		case "/v1/snapshots":
			body, err = cloud.SealSnapshots(&batch.SnapshotSet{Store: store, AsOf: now, Snapshots: []loyalty.Snapshot{{
				Card: card, Member: "m-1", Balance: 9000, AsOf: now,
				Allowance: &loyalty.Allowance{Points: 2000, Expires: now.Add(24 * time.Hour)},
			}}})
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			t.Error(err)
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", batch.ContentType)
		w.Write(body)
	}))
	defer srv.Close()
	f := &agent.Feed{URL: srv.URL, Program: "test", Store: "S1", CloudKey: cloud.Public(), Sign: func(*http.Request, time.Time) {},
		PutSnapshots: h.J.PutSnapshots, Agent: h.Agent}
	pullErr := f.Pull(ctx)
	s, ok, err := h.J.Snapshot(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Fatalf("till of store S1 stored a snapshot signed for store S2 (balance %d, allowance %+v); Pull returned %v",
			s.Balance, *s.Allowance, pullErr)
	}
	if pullErr == nil {
		t.Fatal("Pull accepted a snapshot page for another store")
	}

	store = "S1" // the till's own store's page is taken
	if err := f.Pull(ctx); err != nil {
		t.Fatalf("pull of the till's own store's snapshots: %v", err)
	}
	if s, ok, err := h.J.Snapshot(ctx, card); err != nil || !ok || s.Balance != 9000 {
		t.Fatalf("own store's snapshot: %+v, found %t, %v; want balance 9000", s, ok, err)
	}
}
