package printer_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/devicestest"
	"github.com/tillpoint/tillpoint/devices/printer"
	"github.com/tillpoint/tillpoint/hil-tests/printeremu"
)

// BenchmarkPrintJobTCP prints one receipt through the emulator on
// loopback TCP: real-time status, data, GS r confirmation, job-ID
// bookkeeping. The baseline is one bare DLE EOT round trip on the same
// kind of connection, so the ratio is the job's cost in round trips.
func BenchmarkPrintJobTCP(b *testing.B) {
	emu := printeremu.New()
	addr, err := emu.ListenTCP("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	one := make([]byte, 1)
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write([]byte{0x10, 0x04, 0x01}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(one); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Since(start)
	c.Close()

	cfg := printer.DefaultConfig(devices.ID{Path: "tcp:" + addr}, printer.TCP(addr))
	cfg.PollInterval = 0
	p := printer.New(cfg, &devicestest.Events{})
	ctx := context.Background()
	if err := p.Open(ctx); err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	b.ResetTimer()
	start = time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := p.Print(ctx, printer.Job{ID: fmt.Sprint("bench-", i), Data: receipt}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start))/float64(base), "x_roundtrip")
}
