package uplink_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// BenchmarkCatchUp50k: a terminal comes back after three days offline with
// 50,000 unsent ops in its journal; the timed part is Sync until the real
// cloud (SQLite ledger, loopback HTTP) has acknowledged them all. Goal: 10 s.
//
// The baseline, in the same run, posts the same ops as pre-sealed batches
// of the same size to a second, fresh cloud in a plain loop and verifies
// each ack: the ledger's and HTTP's share, without journal or uplink.
//
//	s/catch-up   seconds for the 50,000 ops through the uplink
//	ops/s        the same as a rate
//	bare-s       seconds for the baseline
//	x-bare       the ratio
//	cpu-s        CPU seconds of the process (terminal and cloud) for the catch-up
//	bare-cpu-s   the same for the baseline
//
// On a shared machine the CPU seconds are steadier than the wall times.
//
// Run it with: go test -run '^$' -bench CatchUp50k -benchtime 1x ./sync/uplink/
func BenchmarkCatchUp50k(b *testing.B) {
	const n = 50000
	var total, bare, cpu, bareCPU time.Duration
	for range b.N {
		b.StopTimer()
		c := newCloud(b)
		tm := c.enroll(b, "T-01")
		ops := appendOps(b, tm.j, earns(0, n, 997))
		cfg := tm.config(b, c.url)
		cfg.MaxOps = uplink.DefaultMaxOps
		cfg.RequestTimeout = time.Minute
		u, err := uplink.New(tm.j, cfg)
		if err != nil {
			b.Fatal(err)
		}

		ctx := context.Background()
		b.StartTimer()
		start, startCPU := time.Now(), storetest.CPUTime()
		if err := u.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		total, cpu = total+time.Since(start), cpu+storetest.CPUTime()-startCPU
		b.StopTimer()
		if e, s, _ := tm.j.Acked(ctx); e != 1 || s != n {
			b.Fatalf("journal watermark after catch-up: got %d/%d, want 1/%d", e, s, n)
		}

		startCPU = storetest.CPUTime()
		bare += bareCatchUp(b, ops, cfg.MaxOps)
		bareCPU += storetest.CPUTime() - startCPU
	}
	sec := total.Seconds() / float64(b.N)
	b.ReportMetric(sec, "s/catch-up")
	b.ReportMetric(float64(n)/sec, "ops/s")
	b.ReportMetric(bare.Seconds()/float64(b.N), "bare-s")
	b.ReportMetric(float64(total)/float64(bare), "x-bare")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s")
	b.ReportMetric(bareCPU.Seconds()/float64(b.N), "bare-cpu-s")
}

// bareCatchUp posts ops to a fresh cloud as pre-sealed batches of size
// per and returns the time the posts and ack checks took.
func bareCatchUp(b *testing.B, ops []loyalty.Op, per int) time.Duration {
	c := newCloud(b)
	tm := c.enroll(b, "T-01")
	s, err := batch.NewSigner(tm.st.Terminal, tm.st.Program, tm.st.Key)
	if err != nil {
		b.Fatal(err)
	}
	var sealed [][]byte
	var prev batch.Hash
	for first := 0; first < len(ops); first += per {
		last := min(first+per, len(ops))
		bt := &batch.Batch{Terminal: "T-01", Epoch: 1, First: uint64(first + 1), Last: uint64(last), Prev: prev, Ops: ops[first:last]}
		sb, err := s.SealBatch(bt)
		if err != nil {
			b.Fatal(err)
		}
		sealed, prev = append(sealed, sb.Bytes), sb.Hash
	}
	client := &http.Client{}
	start := time.Now()
	for _, body := range sealed {
		resp, err := client.Post(c.url+"/v1/batches", batch.ContentType, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		answer, err := batch.ReadResponse(resp.Body, batch.MaxAckBytes)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("bare post: HTTP %d, %v", resp.StatusCode, err)
		}
		if _, err := batch.OpenAck(answer, e2eProgram, tm.st.CloudKey); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}
