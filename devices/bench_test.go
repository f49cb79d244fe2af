package devices_test

import (
	"context"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices"
)

// BenchmarkBusPublishNextRead hands one scan from a driver to the agent;
// the baseline is a send and receive on a buffered channel.
func BenchmarkBusPublishNextRead(b *testing.B) {
	ch := make(chan devices.Event, 1)
	s := scan("2012345678903")
	start := time.Now()
	for i := 0; i < b.N; i++ {
		ch <- s
		<-ch
	}
	base := time.Since(start)
	bus := devices.NewBus()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start = time.Now()
	for i := 0; i < b.N; i++ {
		bus.Publish(s)
		if _, err := bus.NextRead(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start))/float64(base), "x_chan")
}
