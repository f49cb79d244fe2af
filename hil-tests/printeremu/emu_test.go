package printeremu_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/printeremu"
)

func dial(t *testing.T, p *printeremu.Printer) net.Conn {
	t.Helper()
	addr, err := p.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readByte(t *testing.T, c net.Conn, d time.Duration) (byte, bool) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return 0, false
	}
	return b[0], true
}

// TestRealtimeAnsweredWhileBufferedStatusWaitsForPaper defends the
// emulator's two kinds of status: DLE EOT at once, GS r only after the
// data before it printed.
func TestRealtimeAnsweredWhileBufferedStatusWaitsForPaper(t *testing.T) {
	p := printeremu.New()
	c := dial(t, p)
	p.SetPaperOut(true)
	if _, err := c.Write([]byte("receipt\n\x1dr\x01\x10\x04\x04")); err != nil {
		t.Fatal(err)
	}
	b, ok := readByte(t, c, 5*time.Second)
	if !ok || b != 0x72 { // 0x12 | paper end 0x60
		t.Fatalf("DLE EOT 4 while out of paper = %#x (%v), want 0x72", b, ok)
	}
	if len(p.Jobs()) != 0 || p.Pending() == 0 {
		t.Fatalf("printed %d jobs with %d bytes pending, want nothing printed while out of paper", len(p.Jobs()), p.Pending())
	}
	p.SetPaperOut(false)
	b, ok = readByte(t, c, 5*time.Second)
	if !ok || b != 0x00 {
		t.Fatalf("GS r 1 after paper back = %#x (%v), want 0x00", b, ok)
	}
	if jobs := p.Jobs(); len(jobs) != 1 || !bytes.Equal(jobs[0], []byte("receipt\n")) {
		t.Fatalf("jobs = %q, want one receipt", jobs)
	}
}

func TestSilentPrinterAnswersNothingButPrints(t *testing.T) {
	p := printeremu.New()
	p.SetSilent(true)
	c := dial(t, p)
	if _, err := c.Write([]byte("\x10\x04\x01hello\x1dr\x01\x1bp\x00\x19\xfa")); err != nil {
		t.Fatal(err)
	}
	if b, ok := readByte(t, c, 100*time.Millisecond); ok {
		t.Fatalf("silent printer answered %#x", b)
	}
	if !p.WaitFor(5*time.Second, func(p *printeremu.Printer) bool { return p.Kicks() == 1 }) {
		t.Fatalf("kicks = %d, want 1", p.Kicks())
	}
	if jobs := p.Jobs(); len(jobs) != 1 || string(jobs[0]) != "hello" {
		t.Fatalf("jobs = %q, want [hello]", jobs)
	}
}
