package server_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
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
// HTTP path takes than the bare apply. "terminals=4" has four terminals of
// four stores post at once, each its next batch when the last is
// acknowledged, against four goroutines applying the same batches
// straight: the two cores then share the HTTP path with the database.
// PostgreSQL runs when TILLPOINT_TEST_POSTGRES is set.
func BenchmarkIngestHTTP(b *testing.B) {
	for _, be := range backends {
		for _, run := range []struct{ size, terminals int }{{100, 1}, {1000, 1}, {1000, 4}} {
			name := fmt.Sprintf("%s/ops=%d", be.name, run.size)
			if run.terminals > 1 {
				name += fmt.Sprintf(",terminals=%d", run.terminals)
			}
			b.Run(name, func(b *testing.B) { benchIngest(b, be, run.size, run.terminals) })
		}
	}
}

func benchIngest(b *testing.B, be backend, size, terminals int) {
	ctx := context.Background()
	ts := newTestServerWith(b, be.open(b))
	base := be.open(b)
	now := ts.clock.Now()
	sealed := make([][]batch.Sealed, terminals) // by terminal, then in order
	direct := make([][]cloud.Batch, terminals)
	for t := range terminals {
		store, id := fmt.Sprintf("S%d", t+1), fmt.Sprintf("T%d", t+1)
		tm := enroll(b, ts, store, id)
		tm.cards = 200
		pub := tm.key.Public().(ed25519.PublicKey)
		if err := base.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "BENCH-" + id, Store: store, Terminal: id, Expires: now.Add(time.Hour), Created: now}); err != nil {
			b.Fatal(err)
		}
		if _, err := base.Enroll(ctx, "BENCH-"+id, cloud.TerminalKey{PublicKey: pub, KeyID: batch.Fingerprint(pub)}, now); err != nil {
			b.Fatal(err)
		}
		for range b.N {
			s := tm.seal(b, size)
			bt, hash, err := batch.OpenBatch(s.Bytes, testProgram, pub)
			if err != nil {
				b.Fatal(err)
			}
			d := cloud.Batch{Terminal: bt.Terminal, Epoch: bt.Epoch, FirstSeq: bt.First, LastSeq: bt.Last, Hash: hash[:], Ops: bt.Ops, ReceivedAt: now}
			if !bt.Prev.IsZero() {
				d.PrevHash = bt.Prev[:]
			}
			sealed[t], direct[t] = append(sealed[t], s), append(direct[t], d)
		}
	}

	// Baseline and HTTP alternate batch by batch, so a shared machine's
	// changing load weighs on both alike.
	var baseline, viaHTTP time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		baseline += eachTerminal(b, terminals, func(t int) error {
			_, err := base.Apply(ctx, direct[t][i])
			return err
		})
		viaHTTP += eachTerminal(b, terminals, func(t int) error {
			return postOK(ts, sealed[t][i].Bytes)
		})
	}
	b.StopTimer()
	ops := float64(b.N * size * terminals)
	b.ReportMetric(ops/viaHTTP.Seconds(), "ops/s")
	b.ReportMetric(ops/baseline.Seconds(), "direct-ops/s")
	b.ReportMetric(viaHTTP.Seconds()/baseline.Seconds(), "x-direct")
}

// eachTerminal runs f for every terminal at once and returns how long
// they took together.
func eachTerminal(b *testing.B, terminals int, f func(t int) error) time.Duration {
	start := time.Now()
	errs := make(chan error, terminals)
	for t := range terminals {
		go func() { errs <- f(t) }()
	}
	for range terminals {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// postOK sends a sealed batch and wants it acknowledged; unlike post, it
// may run outside the test's goroutine.
func postOK(ts *testServer, body []byte) error {
	resp, err := http.Post(ts.url+"/v1/batches", batch.ContentType, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post: %d %s", resp.StatusCode, reply)
	}
	return nil
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
