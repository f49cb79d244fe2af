package server_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// BenchmarkIngestHTTP measures POST /v1/batches end to end on loopback
// (read, verify, decode, apply, seal the ack) in ops/s, against a baseline
// in the same run: the same batches handed straight to Ledger.Apply on a
// second ledger of the same kind. x-direct is how many times longer the
// HTTP path takes than the bare apply. PostgreSQL runs when
// TILLPOINT_TEST_POSTGRES is set.
func BenchmarkIngestHTTP(b *testing.B) {
	for _, be := range backends {
		for _, size := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/ops=%d", be.name, size), func(b *testing.B) { benchIngest(b, be, size) })
		}
	}
}

func benchIngest(b *testing.B, be backend, size int) {
	ctx := context.Background()
	ts := newTestServerWith(b, be.open(b))
	tm := enroll(b, ts, "S1", "T1")
	tm.cards = 200
	sealed := make([]batch.Sealed, b.N)
	for i := range sealed {
		sealed[i] = tm.seal(b, size)
	}

	base := be.open(b)
	now := ts.clock.Now()
	pub := tm.key.Public().(ed25519.PublicKey)
	if err := base.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "BENCH", Store: "S1", Terminal: "T1", Expires: now.Add(time.Hour), Created: now}); err != nil {
		b.Fatal(err)
	}
	if _, err := base.Enroll(ctx, "BENCH", cloud.TerminalKey{PublicKey: pub, KeyID: batch.Fingerprint(pub)}, now); err != nil {
		b.Fatal(err)
	}
	direct := make([]cloud.Batch, b.N)
	for i, s := range sealed {
		bt, hash, err := batch.OpenBatch(s.Bytes, testProgram, pub)
		if err != nil {
			b.Fatal(err)
		}
		direct[i] = cloud.Batch{Terminal: bt.Terminal, Epoch: bt.Epoch, FirstSeq: bt.First, LastSeq: bt.Last, Hash: hash[:], Ops: bt.Ops, ReceivedAt: now}
		if !bt.Prev.IsZero() {
			direct[i].PrevHash = bt.Prev[:]
		}
	}

	// Baseline and HTTP alternate batch by batch, so a shared machine's
	// changing load weighs on both alike.
	var baseline, viaHTTP time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := base.Apply(ctx, direct[i]); err != nil {
			b.Fatalf("baseline apply: %v", err)
		}
		baseline += time.Since(start)
		start = time.Now()
		if status, _, body := post(b, ts, sealed[i].Bytes); status != http.StatusOK {
			b.Fatalf("post: %d %s", status, body)
		}
		viaHTTP += time.Since(start)
	}
	b.StopTimer()
	ops := float64(b.N * size)
	b.ReportMetric(ops/viaHTTP.Seconds(), "ops/s")
	b.ReportMetric(ops/baseline.Seconds(), "direct-ops/s")
	b.ReportMetric(viaHTTP.Seconds()/baseline.Seconds(), "x-direct")
}

// BenchmarkRosterFeed is one till's roster refresh, GET /v1/roster with
// the card key and the gossip keyring sealed to it, for a store of 20
// tills, end to end on loopback; the baseline in the same run is the
// cheapest other signed feed, GET /v1/rules (the same request signature
// check and one cloud signature). x-rules is the ratio.
func BenchmarkRosterFeed(b *testing.B) {
	ts := newTestServer(b, withCardKey)
	var tm *terminal
	for i := range 20 {
		tm = enroll(b, ts, "S1", fmt.Sprintf("T%02d", i))
	}
	if err := ts.ledger.PublishRules(context.Background(), loyalty.Rules{Version: 1, Program: testProgram, Currency: "EUR", BasePoints: 1, BasePer: 100}, ts.clock.Now()); err != nil {
		b.Fatal(err)
	}
	box, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	rosterPath := "/v1/roster?" + server.QueryBoxKey + "=" + base64.RawURLEncoding.EncodeToString(box.PublicKey().Bytes())
	get := func(path string) []byte {
		status, _, body := send(b, signedGet(b, ts, tm, path, ts.clock.Now()))
		if status != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, status, body)
		}
		return body
	}
	var roster, rules time.Duration
	for b.Loop() {
		t0 := time.Now()
		body := get(rosterPath)
		doc, err := batch.OpenRoster(body, testProgram, ts.Key.Public().(ed25519.PublicKey))
		if err != nil || len(doc.Terminals) != 20 {
			b.Fatalf("roster: %v", err)
		}
		if _, err := batch.OpenSecrets(box, testProgram, tm.id, doc.Secrets); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := batch.OpenRules(get("/v1/rules"), testProgram, ts.Key.Public().(ed25519.PublicKey)); err != nil {
			b.Fatal(err)
		}
		rules += time.Since(t1)
		roster += t1.Sub(t0)
	}
	n := float64(b.N)
	b.ReportMetric(float64(roster.Nanoseconds())/n, "roster-ns/op")
	b.ReportMetric(float64(rules.Nanoseconds())/n, "rules-ns/op")
	b.ReportMetric(float64(roster)/float64(rules), "x-rules")
}
