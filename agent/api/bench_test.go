package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/agenttest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// BenchmarkCheckoutAPI: POST /v1/checkout over loopback for a known card,
// the op durable in the real journal, the receipt rendered (text and
// ESC/POS), the printer excluded. Each iteration also times one bare
// journal Append of an equivalent earn on the same journal, the baseline,
// so the ratio compares like with like on the same disk at the same moment.
// Reports p50 and p99 of both and the ratio of the p50s (goal: at most 2),
// and the process's CPU time per op of each (getrusage around each part),
// which a loaded machine disturbs less than wall time.
func BenchmarkCheckoutAPI(b *testing.B) {
	h := agenttest.Start(b, agenttest.Options{})
	h.Printer = nil
	card := agenttest.Card(b, cardA)
	h.PutSnapshot(b, loyalty.Snapshot{Card: card.Hash(agenttest.CardKey()), Member: "m1", Balance: 100, Tier: "Silver", AsOf: time.Now()})
	body := []byte(`{"card":"` + cardA + `","basket":{"currency":"EUR","lines":[{"sku":"milk","category":"dairy","quantity":2,"amount":250},{"sku":"bread","category":"bakery","quantity":1,"amount":399},{"sku":"wine","category":"drinks","quantity":1,"amount":1299}]}}`)
	basket := &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "milk", Category: "dairy", Quantity: 2, Amount: 250},
		{SKU: "bread", Category: "bakery", Quantity: 1, Amount: 399}, {SKU: "wine", Category: "drinks", Quantity: 1, Amount: 1299}}}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	ctx := context.Background()
	checkout := func(i int) {
		req, _ := http.NewRequest("POST", h.URL+"/v1/checkout", bytes.NewReader(body))
		req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d-%d", b.N, i))
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("checkout: status %d", resp.StatusCode)
		}
	}
	bare := func() {
		id, _ := loyalty.NewOpID(time.Now(), rand.Reader)
		op := loyalty.Op{ID: id, Kind: loyalty.OpEarn, Card: card.Hash(agenttest.CardKey()), Member: "m1", Points: 19,
			Basket: basket, RulesVersion: 1, WallTime: time.Now()}
		if _, err := h.J.Append(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	checkout(-1) // warm the connection
	api := make([]time.Duration, 0, b.N)
	base := make([]time.Duration, 0, b.N)
	var apiCPU, baseCPU time.Duration
	b.ResetTimer()
	for i := range b.N {
		c0, t0 := cpu(), time.Now()
		bare()
		c1, t1 := cpu(), time.Now()
		checkout(i)
		c2, t2 := cpu(), time.Now()
		base = append(base, t1.Sub(t0))
		api = append(api, t2.Sub(t1))
		baseCPU += c1 - c0
		apiCPU += c2 - c1
	}
	b.StopTimer()
	p := func(d []time.Duration, q float64) float64 {
		slices.Sort(d)
		return float64(d[int(q*float64(len(d)-1))].Microseconds())
	}
	b.ReportMetric(p(api, 0.50), "p50-µs")
	b.ReportMetric(p(api, 0.99), "p99-µs")
	b.ReportMetric(p(base, 0.50), "append-p50-µs")
	b.ReportMetric(p(base, 0.99), "append-p99-µs")
	b.ReportMetric(p(api, 0.50)/max(p(base, 0.50), 1), "ratio-p50")
	b.ReportMetric(float64(apiCPU.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(baseCPU.Microseconds())/float64(b.N), "append-cpu-µs/op")
	b.ReportMetric(float64(apiCPU)/float64(max(baseCPU, 1)), "ratio-cpu")
}
