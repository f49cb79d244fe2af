package printer_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/devicestest"
	"github.com/tillpoint/tillpoint/devices/printer"
	"github.com/tillpoint/tillpoint/hil-tests/printeremu"
)

var update = flag.Bool("update", false, "record the transcripts in testdata/transcripts again, against the printer emulator")

// recConn records what goes through a printer connection.
type recConn struct {
	printer.Conn
	rec *devicestest.Record
}

func (c recConn) Read(p []byte) (int, error)  { return c.rec.Read(p) }
func (c recConn) Write(p []byte) (int, error) { return c.rec.Write(p) }

type transcriptCase struct {
	name    string
	comment string
	setup   func(emu *printeremu.Printer)                                        // before the job
	during  func(t *testing.T, emu *printeremu.Printer, evs *devicestest.Events) // while the job runs
	check   func(t *testing.T, res printer.Result, evs *devicestest.Events)
}

var transcriptCases = []transcriptCase{
	{
		name:    "paper-out-job",
		comment: "Open's status; a job sent while out of paper: status polls answer paper end until paper is back, then the job and GS r 1.",
		setup:   func(emu *printeremu.Printer) { emu.SetPaperOut(true) },
		during: func(t *testing.T, emu *printeremu.Printer, _ *devicestest.Events) {
			// Open's status request, then two of the job's polls.
			if !emu.WaitFor(wait, func(e *printeremu.Printer) bool {
				return bytes.Count(e.Received(), []byte{0x10, 0x04, 0x01}) >= 3
			}) {
				t.Fatal("the job did not poll the status")
			}
			emu.SetPaperOut(false)
		},
		check: func(t *testing.T, res printer.Result, evs *devicestest.Events) {
			if !res.WaitedForPaper || !res.Confirmed {
				t.Errorf("result = %+v, want waited for paper, confirmed", res)
			}
			if devicestest.Count(evs.All(), devicestest.IsHealth(devices.CodePaperOut)) == 0 {
				t.Error("no paper_out health during the replay")
			}
		},
	},
	{
		name:    "near-end-job",
		comment: "A printer with paper near its end prints, and says so.",
		setup:   func(emu *printeremu.Printer) { emu.SetNearEnd(true) },
		check: func(t *testing.T, res printer.Result, evs *devicestest.Events) {
			if !res.Confirmed || !res.Status.PaperNearEnd || res.WaitedForPaper {
				t.Errorf("result = %+v, want confirmed with paper near end, no wait", res)
			}
		},
	},
}

func runTranscriptCase(t *testing.T, tc transcriptCase, dial printer.Dialer, emu *printeremu.Printer) (printer.Result, *devicestest.Events) {
	t.Helper()
	cfg := testConfig(devices.ID{Path: "transcript:" + tc.name}, dial)
	evs := &devicestest.Events{}
	p := printer.New(cfg, evs)
	if err := p.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	type out struct {
		res printer.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := p.Print(ctxWait(t), printer.Job{ID: tc.name, Data: receipt})
		done <- out{r, err}
	}()
	if tc.during != nil && emu != nil {
		tc.during(t, emu, evs)
	}
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatal(o.err)
		}
		return o.res, evs
	case <-time.After(wait):
		t.Fatal("job did not finish")
	}
	return printer.Result{}, nil
}

// TestRecordedTranscripts replays byte transcripts recorded against the
// printer emulator (go test -run TestRecordedTranscripts -update records
// them again): the driver must make exactly the recorded exchanges.
func TestRecordedTranscripts(t *testing.T) {
	for _, tc := range transcriptCases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join("testdata", "transcripts", tc.name+".txt")
			if *update {
				emu := printeremu.New()
				addr, err := emu.ListenTCP("127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer emu.Close()
				if tc.setup != nil {
					tc.setup(emu)
				}
				rec := &devicestest.Record{}
				dial := func(ctx context.Context) (printer.Conn, error) {
					c, err := printer.TCP(addr)(ctx)
					if err != nil {
						return nil, err
					}
					rec.Conn = c
					return recConn{Conn: c, rec: rec}, nil
				}
				runTranscriptCase(t, tc, dial, emu)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := devicestest.WriteTranscript(f, tc.comment+"\nRecorded against hil-tests/printeremu.", rec.Ops()); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
			pb, err := devicestest.LoadPlayback(path)
			if err != nil {
				t.Fatalf("%v (record it with -update)", err)
			}
			dial := func(context.Context) (printer.Conn, error) { return pb, nil }
			res, evs := runTranscriptCase(t, tc, dial, nil)
			tc.check(t, res, evs)
			if err := pb.Close(); err != nil {
				t.Errorf("replay: %v", err)
			}
		})
	}
}
