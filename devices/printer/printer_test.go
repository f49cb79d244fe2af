package printer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/devicestest"
	"github.com/tillpoint/tillpoint/devices/printer"
	"github.com/tillpoint/tillpoint/hil-tests/printeremu"
	"github.com/tillpoint/tillpoint/hil-tests/ptypair"
)

const wait = 10 * time.Second

var receipt = []byte("\x1b@Loyalty: 120 points\n\x1d(k\x06\x001P0\x10\x04\x01\x1dV\x00") // a QR payload holding DLE EOT bytes

func testConfig(id devices.ID, dial printer.Dialer) printer.Config {
	cfg := printer.DefaultConfig(id, dial)
	cfg.PaperPoll = 10 * time.Millisecond
	cfg.PollInterval = 0
	cfg.JobTimeout = 2 * time.Second
	return cfg
}

func openTCP(t *testing.T, edit func(*printer.Config)) (*printeremu.Printer, *printer.Printer, *devicestest.Events) {
	t.Helper()
	emu := printeremu.New()
	addr, err := emu.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	cfg := testConfig(devices.ID{Path: "tcp:" + addr}, printer.TCP(addr))
	if edit != nil {
		edit(&cfg)
	}
	evs := &devicestest.Events{}
	p := printer.New(cfg, evs)
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return emu, p, evs
}

func ctxWait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func TestTCPJobPrintsOnceAndIsConfirmed(t *testing.T) {
	emu, p, _ := openTCP(t, nil)
	ctx := ctxWait(t)
	res, err := p.Print(ctx, printer.Job{ID: "job-1", Data: receipt})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Printed || !res.Confirmed || res.Duplicate {
		t.Errorf("result = %+v, want printed and confirmed", res)
	}
	again, err := p.Print(ctx, printer.Job{ID: "job-1", Data: receipt})
	if err != nil || !again.Duplicate {
		t.Errorf("retry = %+v, %v; want a duplicate, no error", again, err)
	}
	jobs := emu.Jobs()
	if len(jobs) != 1 || !bytes.Equal(jobs[0], receipt) {
		t.Fatalf("printer got %d jobs (first % x), want exactly the receipt once", len(jobs), first(jobs))
	}
	if h := p.Health(); h.Code != devices.CodeOK || h.State != devices.StateIdle {
		t.Errorf("health = %v, want idle/ok", h)
	}
}

func first(j [][]byte) []byte {
	if len(j) == 0 {
		return nil
	}
	return j[0]
}

func TestPaperOutJobWaitsThenPrintsOnce(t *testing.T) {
	emu, p, evs := openTCP(t, nil)
	emu.SetPaperOut(true)
	done := make(chan error, 1)
	var res printer.Result
	go func() {
		var err error
		res, err = p.Print(ctxWait(t), printer.Job{ID: "job-paper", Data: receipt})
		done <- err
	}()
	evs.Wait(t, wait, "paper out health", func(e []devices.Event) bool {
		return devicestest.Count(e, devicestest.IsHealth(devices.CodePaperOut)) > 0
	})
	if n := len(emu.Jobs()); n != 0 {
		t.Fatalf("printed %d jobs while out of paper, want 0", n)
	}
	if h := p.Health(); h.Reason != "Printer: paper out; load a new roll" {
		t.Errorf("reason = %q, want the cashier's paper-out message", h.Reason)
	}
	emu.SetPaperOut(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !res.WaitedForPaper || !res.Confirmed {
		t.Errorf("result = %+v, want waited and confirmed", res)
	}
	if jobs := emu.Jobs(); len(jobs) != 1 || !bytes.Equal(jobs[0], receipt) {
		t.Fatalf("printer got %d jobs, want the receipt once", len(jobs))
	}
	if h := p.Health(); h.Code != devices.CodeOK {
		t.Errorf("health after paper back = %v, want ok", h)
	}
}

func TestPaperOutGiveUpThenRetryPrintsOnce(t *testing.T) {
	emu, p, _ := openTCP(t, nil)
	emu.SetPaperOut(true)
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.Print(short, printer.Job{ID: "job-r", Data: receipt})
	if !errors.Is(err, printer.ErrNotPrinted) {
		t.Fatalf("Print while out of paper = %v, want ErrNotPrinted", err)
	}
	emu.SetPaperOut(false)
	if _, err := p.Print(ctxWait(t), printer.Job{ID: "job-r", Data: receipt}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Print(ctxWait(t), printer.Job{ID: "job-r", Data: receipt}); err != nil {
		t.Fatal(err)
	}
	if n := len(emu.Jobs()); n != 1 {
		t.Fatalf("printed %d times, want 1", n)
	}
}

func TestSilentPrinterIsStatusUnknownNotBroken(t *testing.T) {
	emu, p, _ := openTCP(t, nil)
	emu.SetSilent(true)
	st, err := p.Status(ctxWait(t))
	if err != nil || st.Known {
		t.Fatalf("Status = %+v, %v; want unknown, no error", st, err)
	}
	if h := p.Health(); h.Code != devices.CodeStatusUnknown || h.Power != devices.PowerUnknown || h.State == devices.StateError {
		t.Errorf("health = %v, want status_unknown, power unknown, not error", h)
	}
	res, err := p.Print(ctxWait(t), printer.Job{ID: "job-s", Data: receipt})
	if err != nil || !res.Printed || res.Confirmed {
		t.Fatalf("Print = %+v, %v; want printed, unconfirmed", res, err)
	}
	if !emu.WaitFor(wait, func(e *printeremu.Printer) bool { return len(e.Jobs()) == 1 }) {
		t.Fatalf("printer got %d jobs, want 1", len(emu.Jobs()))
	}
}

func TestStatusReportsCoverOpenAndNearEnd(t *testing.T) {
	emu, p, _ := openTCP(t, nil)
	emu.SetCoverOpen(true)
	st, err := p.Status(ctxWait(t))
	if err != nil || !st.CoverOpen || st.Ready() {
		t.Fatalf("Status = %+v, %v; want cover open, not ready", st, err)
	}
	if h := p.Health(); h.Code != devices.CodeCoverOpen || h.State != devices.StateError {
		t.Errorf("health = %v, want error/cover_open", h)
	}
	emu.SetCoverOpen(false)
	emu.SetNearEnd(true)
	st, err = p.Status(ctxWait(t))
	if err != nil || !st.PaperNearEnd || !st.Ready() {
		t.Fatalf("Status = %+v, %v; want near end and ready", st, err)
	}
	if h := p.Health(); h.Code != devices.CodePaperNearEnd || !h.OK() {
		t.Errorf("health = %v, want paper_near_end and OK", h)
	}
}

func TestDrawerKickOnceAndStaleKickDropped(t *testing.T) {
	emu, p, _ := openTCP(t, nil)
	ctx := ctxWait(t)
	for range 2 {
		if _, err := p.Print(ctx, printer.Job{ID: "kick-1", Kind: printer.JobDrawerKick}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := p.Print(ctx, printer.Job{ID: "kick-2", Kind: printer.JobDrawerKick, Created: time.Now().Add(-time.Minute)})
	if !errors.Is(err, printer.ErrStaleKick) {
		t.Errorf("stale kick = %v, want ErrStaleKick", err)
	}
	if !emu.WaitFor(wait, func(e *printeremu.Printer) bool { return e.Kicks() >= 1 }) || emu.Kicks() != 1 {
		t.Fatalf("drawer opened %d times, want 1", emu.Kicks())
	}
	if !bytes.Contains(emu.Received(), []byte{0x1b, 0x70, 0x00, 25, 250}) {
		t.Errorf("no ESC p 0 in what the printer received")
	}
}

func TestJobWithoutIDIsRefused(t *testing.T) {
	_, p, _ := openTCP(t, nil)
	if _, err := p.Print(ctxWait(t), printer.Job{Data: receipt}); !errors.Is(err, printer.ErrNoJobID) {
		t.Errorf("Print without ID = %v, want ErrNoJobID", err)
	}
}

func TestUnreachablePrinterReportsAndRecovers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	evs := &devicestest.Events{}
	p := printer.New(testConfig(devices.ID{Path: "tcp:" + addr}, printer.TCP(addr)), evs)
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if h := p.Health(); h.Code != devices.CodeDisconnected || h.Power != devices.PowerOffline {
		t.Fatalf("health = %v, want disconnected/offline", h)
	}
	emu := printeremu.New()
	if _, err := emu.ListenTCP(addr); err != nil {
		t.Skipf("cannot listen on the freed port again: %v", err)
	}
	defer emu.Close()
	if _, err := p.Print(ctxWait(t), printer.Job{ID: "job-u", Data: receipt}); err != nil {
		t.Fatal(err)
	}
	if len(emu.Jobs()) != 1 {
		t.Fatalf("printed %d jobs, want 1", len(emu.Jobs()))
	}
}

func TestPrinterRestartMidSessionReconnects(t *testing.T) {
	emu, p, _ := openTCP(t, nil)
	ctx := ctxWait(t)
	if _, err := p.Print(ctx, printer.Job{ID: "a", Data: receipt}); err != nil {
		t.Fatal(err)
	}
	addr := p.ID().Path[len("tcp:"):]
	_ = emu.Close()
	if _, err := p.Status(ctx); err == nil {
		t.Fatal("Status after the printer went away = nil error, want one")
	}
	if h := p.Health(); h.Code != devices.CodeDisconnected {
		t.Errorf("health = %v, want disconnected", h)
	}
	emu2 := printeremu.New()
	if _, err := emu2.ListenTCP(addr); err != nil {
		t.Skipf("cannot listen on the port again: %v", err)
	}
	defer emu2.Close()
	if _, err := p.Print(ctx, printer.Job{ID: "b", Data: receipt}); err != nil {
		t.Fatal(err)
	}
	if len(emu2.Jobs()) != 1 {
		t.Fatalf("printed %d jobs on the restarted printer, want 1", len(emu2.Jobs()))
	}
}

func servePty(t *testing.T, pair *ptypair.Pair) *printeremu.Printer {
	t.Helper()
	f, err := pair.OpenA()
	if err != nil {
		t.Fatal(err)
	}
	emu := printeremu.New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = emu.Serve(ctx, f) }()
	t.Cleanup(func() { cancel(); <-done })
	return emu
}

func TestSerialPrinterOverPty(t *testing.T) {
	pair := ptypair.New(t)
	emu := servePty(t, pair)
	mode := printer.DefaultSerialMode()
	p := printer.New(testConfig(devices.ID{Path: pair.B}, printer.Serial(pair.B, mode)), &devicestest.Events{})
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	emu.SetPaperOut(true)
	st, err := p.Status(ctxWait(t))
	if err != nil || !st.PaperOut {
		t.Fatalf("Status = %+v, %v; want paper out", st, err)
	}
	emu.SetPaperOut(false)
	res, err := p.Print(ctxWait(t), printer.Job{ID: "ser-1", Data: receipt})
	if err != nil || !res.Confirmed {
		t.Fatalf("Print = %+v, %v; want confirmed", res, err)
	}
	if jobs := emu.Jobs(); len(jobs) != 1 || !bytes.Equal(jobs[0], receipt) {
		t.Fatalf("printer got %d jobs, want the receipt once", len(jobs))
	}
}

// The USB line-printer path opens a character device as a file; a pty is
// one, so the same code is tested here.
func TestUSBLPFilePathOverPty(t *testing.T) {
	pair := ptypair.New(t)
	emu := servePty(t, pair)
	p := printer.New(testConfig(devices.ID{Path: pair.B}, printer.USBLP(pair.B)), &devicestest.Events{})
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	res, err := p.Print(ctxWait(t), printer.Job{ID: "lp-1", Data: receipt})
	if err != nil || !res.Confirmed {
		t.Fatalf("Print = %+v, %v; want confirmed", res, err)
	}
	if len(emu.Jobs()) != 1 {
		t.Fatalf("printer got %d jobs, want 1", len(emu.Jobs()))
	}
}

// TestJobTranscript pins the bytes of one job: real-time status, the data,
// then GS r 1.
func TestJobTranscript(t *testing.T) {
	ready := []byte{0x12, 0x12, 0x12, 0x12}
	pb := &devicestest.Playback{Ops: []devicestest.IO{
		{W: []byte("\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04"), R: ready}, // Open's status
		{W: []byte("\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04"), R: ready},
		{W: []byte("hello\n")},
		{W: []byte{0x1d, 0x72, 0x01}, R: []byte{0x00}},
	}}
	dial := func(context.Context) (printer.Conn, error) { return pb, nil }
	p := printer.New(testConfig(devices.ID{Path: "playback"}, dial), &devicestest.Events{})
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := p.Print(ctxWait(t), printer.Job{ID: "t", Data: []byte("hello\n")})
	if err != nil || !res.Confirmed {
		t.Fatalf("Print = %+v, %v", res, err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLateStatusAnswerIsNotTakenForTheNext defends the drain: a printer
// that answers a status request after the driver stopped waiting must not
// have that stale answer read as the answer to the next request.
func TestLateStatusAnswerIsNotTakenForTheNext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	opened, lateWritten := make(chan struct{}), make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req := make([]byte, 12)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		<-opened                                       // the driver gave up waiting: status unknown
		_, _ = c.Write([]byte{0x12, 0x32, 0x12, 0x72}) // paper out, too late
		close(lateWritten)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		_, _ = c.Write([]byte{0x12, 0x12, 0x12, 0x12}) // ready
		_, _ = io.Copy(io.Discard, c)
	}()
	addr := ln.Addr().String()
	p := printer.New(testConfig(devices.ID{Path: "tcp:" + addr}, printer.TCP(addr)), &devicestest.Events{})
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if h := p.Health(); h.Code != devices.CodeStatusUnknown {
		t.Fatalf("health after an unanswered status = %v, want status_unknown", h)
	}
	close(opened)
	<-lateWritten
	st, err := p.Status(ctxWait(t))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Ready() || st.PaperOut {
		t.Errorf("Status = %+v, want ready (the late paper-out answer is stale)", st)
	}
}

// TestJobLogSharedAcrossRestartPreventsReprint stands for the agent's
// journal-backed JobLog: a new Printer (an agent restart) with the same
// log does not print a job again.
func TestJobLogSharedAcrossRestartPreventsReprint(t *testing.T) {
	emu := printeremu.New()
	addr, err := emu.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	jobs := printer.NewMemoryJobs(10)
	for range 2 {
		cfg := testConfig(devices.ID{Path: "tcp:" + addr}, printer.TCP(addr))
		cfg.Jobs = jobs
		p := printer.New(cfg, &devicestest.Events{})
		if err := p.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Print(ctxWait(t), printer.Job{ID: "once", Data: receipt}); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(emu.Jobs()); n != 1 {
		t.Fatalf("printed %d times across a restart, want 1", n)
	}
}

// A device node that cannot be polled (a regular file stands in for one)
// is used write-only: status unknown, jobs still printed.
func TestUSBLPWithoutPollIsWriteOnly(t *testing.T) {
	path := t.TempDir() + "/lp0"
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := printer.New(testConfig(devices.ID{Path: path}, printer.USBLP(path)), &devicestest.Events{})
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if h := p.Health(); h.Code != devices.CodeStatusUnknown {
		t.Errorf("health = %v, want status_unknown", h)
	}
	res, err := p.Print(ctxWait(t), printer.Job{ID: "lp", Data: []byte("hello\n")})
	if err != nil || !res.Printed || res.Confirmed {
		t.Fatalf("Print = %+v, %v; want printed, unconfirmed", res, err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Contains(got, []byte("hello\n")) {
		t.Errorf("file holds %q, want the job", got)
	}
}
