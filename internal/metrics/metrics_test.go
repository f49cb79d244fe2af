package metrics_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/tillpoint/tillpoint/internal/metrics"
)

func TestExpositionFormat(t *testing.T) {
	r := metrics.New()
	ops := r.Counter("tillpoint_ops_total", "Operations by kind and outcome.", "kind", "outcome")
	lat := r.Histogram("tillpoint_append_seconds", "Append latency.", []float64{0.001, 0.01})
	g := r.Gauge("tillpoint_device_up", "Device health.", "device")
	r.GaugeFunc("tillpoint_sync_backlog_ops", "Unsent ops.", func() float64 { return 7 })
	r.CounterFunc("tillpoint_retries_total", "Retries counted elsewhere.", func() float64 { return 4 })

	ops.Inc("earn", "ok")
	ops.Add(2, "earn", "ok")
	ops.Inc("redeem", `refused "cap"`)
	lat.Observe(0.0005)
	lat.Observe(0.005)
	lat.Observe(3)
	g.Set(1, "printer:tcp\n9100")

	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP tillpoint_ops_total Operations by kind and outcome.
# TYPE tillpoint_ops_total counter
tillpoint_ops_total{kind="earn",outcome="ok"} 3
tillpoint_ops_total{kind="redeem",outcome="refused \"cap\""} 1
# HELP tillpoint_append_seconds Append latency.
# TYPE tillpoint_append_seconds histogram
tillpoint_append_seconds_bucket{le="0.001"} 1
tillpoint_append_seconds_bucket{le="0.01"} 2
tillpoint_append_seconds_bucket{le="+Inf"} 3
tillpoint_append_seconds_sum 3.0055
tillpoint_append_seconds_count 3
# HELP tillpoint_device_up Device health.
# TYPE tillpoint_device_up gauge
tillpoint_device_up{device="printer:tcp\n9100"} 1
# HELP tillpoint_sync_backlog_ops Unsent ops.
# TYPE tillpoint_sync_backlog_ops gauge
tillpoint_sync_backlog_ops 7
# HELP tillpoint_retries_total Retries counted elsewhere.
# TYPE tillpoint_retries_total counter
tillpoint_retries_total 4
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestConcurrentRecordingCountsEverything(t *testing.T) {
	r := metrics.New()
	c := r.Counter("x_total", "x", "k")
	h := r.Histogram("y_seconds", "y", metrics.LatencyBuckets)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				c.Inc("a")
				h.Observe(0.002)
			}
		}()
		go r.WriteTo(new(strings.Builder))
	}
	wg.Wait()
	if got := c.Value("a"); got != 8000 {
		t.Errorf("counter: got %v, want 8000", got)
	}
	if got := h.Count(); got != 8000 {
		t.Errorf("histogram count: got %v, want 8000", got)
	}
}

func TestRegisteringTwicePanics(t *testing.T) {
	r := metrics.New()
	r.Counter("a_total", "a")
	defer func() {
		if recover() == nil {
			t.Error("got no panic for a duplicate name, want one")
		}
	}()
	r.Gauge("a_total", "a")
}
