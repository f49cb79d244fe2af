package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/discover"
	"github.com/tillpoint/tillpoint/devices/nfc"
	"github.com/tillpoint/tillpoint/devices/printer"
	"github.com/tillpoint/tillpoint/devices/scanner"
)

const devicesUsage = `Lists the scanners, NFC readers and printers attached to this till, or
watches them live.

  tillpoint devices list [--json]
  tillpoint devices watch [--scanner PATH]... [--hid PATH]... [--printer ADDR] [--no-nfc] [--reveal]

'list' shows serial ports with their USB VID:PID and serial number (what the
agent's config matches on), PC/SC readers, USB line printers and input
devices that look like barcode scanners.

'watch' prints scans, NFC taps, read errors and device health as they
happen, for the installer at the store. Card numbers and UIDs are shown
only by their last 4 characters unless --reveal is given. Stop it with
Ctrl-C.`

func (m *Main) runDevices(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(m.Stdout, "Usage: tillpoint devices list|watch [flags]\n\n%s\n", devicesUsage)
		if len(args) == 0 {
			return usageError("say 'list' or 'watch', e.g. 'tillpoint devices list'")
		}
		return errHelpShown
	}
	switch args[0] {
	case "list":
		return m.runDevicesList(ctx, args[1:])
	case "watch":
		return m.runDevicesWatch(ctx, args[1:])
	}
	return usageError("unknown devices command %q; use 'tillpoint devices list' or 'tillpoint devices watch'", args[0])
}

// deviceJSON is list's output for scripts; it does not change when
// internal types do.
type deviceJSON struct {
	Kind          string `json:"kind"`
	ID            string `json:"id"`
	Path          string `json:"path"`
	Node          string `json:"node,omitempty"`
	VID           string `json:"vid,omitempty"`
	PID           string `json:"pid,omitempty"`
	Serial        string `json:"serial,omitempty"`
	Name          string `json:"name,omitempty"`
	Manufacturer  string `json:"manufacturer,omitempty"`
	LikelyScanner bool   `json:"likely_scanner,omitempty"`
}

func (m *Main) runDevicesList(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "devices list", "devices list [--json]", "Lists the devices attached to this till.")
	asJSON := fs.Bool("json", false, "print JSON, one object per device, for scripts")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q; 'devices list' takes only flags", fs.Arg(0))
	}
	rep := discover.Finder{}.All(ctx)
	out := make([]deviceJSON, 0, len(rep.Devices))
	for _, d := range rep.Devices {
		out = append(out, deviceJSON{Kind: d.Kind, ID: d.ID.String(), Path: d.ID.Path, Node: d.Node,
			VID: d.ID.VID, PID: d.ID.PID, Serial: d.ID.Serial, Name: d.Name, Manufacturer: d.Manufacturer,
			LikelyScanner: d.LikelyScanner})
	}
	if *asJSON {
		enc := json.NewEncoder(m.Stdout)
		for _, d := range out {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tVID:PID\tSERIAL\tPATH\tNAME")
		for _, d := range out {
			vp := ""
			if d.VID != "" || d.PID != "" {
				vp = d.VID + ":" + d.PID
			}
			name := d.Name
			if d.LikelyScanner {
				name += " (scanner?)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Kind, vp, d.Serial, d.Path, name)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(out) == 0 {
			fmt.Fprintln(m.Stdout, "(nothing found)")
		}
	}
	for _, err := range rep.Errors {
		fmt.Fprintf(m.Stderr, "warning: %v\n", err)
	}
	return nil
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func (m *Main) runDevicesWatch(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "devices watch", "devices watch [flags]",
		"Prints scans, taps and device health live. Card values are redacted unless --reveal.")
	var scanners stringsFlag
	fs.Var(&scanners, "scanner", "serial scanner port to open (repeatable), e.g. /dev/ttyACM0")
	var hids stringsFlag
	fs.Var(&hids, "hid", "keyboard-wedge scanner's input device to grab (repeatable), e.g. /dev/input/by-id/usb-...-event-kbd")
	layout := fs.String("layout", "us", "keyboard layout the HID scanners emulate: us or fr")
	baud := fs.Int("baud", scanner.DefaultBaud, "serial scanners' baud rate")
	framing := fs.String("framing", "cr", "serial scanners' suffix: cr, lf, crlf, tab or gap")
	printerAddr := fs.String("printer", "", "printer to poll for status: host[:9100], /dev/usb/lpN, or serial:/dev/ttyS0")
	noNFC := fs.Bool("no-nfc", false, "do not watch PC/SC readers")
	reveal := fs.Bool("reveal", false, "show full card numbers and UIDs (only for installers testing a card)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q; use --scanner PATH for a scanner", fs.Arg(0))
	}
	fr, err := scanner.ParseFraming(*framing)
	if err != nil {
		return usageError("%v", err)
	}
	logger := slog.New(slog.DiscardHandler)
	bus := devices.NewBus()
	events, unsubscribe := bus.Subscribe(256)
	defer unsubscribe()

	var closers []func(context.Context) error
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, c := range closers {
			_ = c(cctx)
		}
	}()
	for _, path := range scanners {
		cfg := scanner.DefaultConfig(path)
		cfg.Mode.BaudRate = *baud
		cfg.Framing = fr
		cfg.Logger = logger
		s := scanner.NewSerial(cfg, bus)
		if err := s.Open(ctx); err != nil {
			return err
		}
		closers = append(closers, s.Close)
	}
	var km scanner.Keymap
	switch *layout {
	case "us":
		km = scanner.KeymapUS()
	case "fr":
		km = scanner.KeymapFR()
	default:
		return usageError("unknown --layout %q; use us or fr", *layout)
	}
	for _, path := range hids {
		cfg := scanner.DefaultHIDConfig(path)
		cfg.Keymap = km
		cfg.Logger = logger
		h := scanner.NewHID(cfg, bus)
		if err := h.Open(ctx); err != nil {
			return err
		}
		closers = append(closers, h.Close)
	}
	if !*noNFC {
		w := nfc.NewWatcher(nfc.Config{Logger: logger}, bus)
		if err := w.Open(ctx); err != nil {
			return err
		}
		closers = append(closers, w.Close)
	}
	if *printerAddr != "" {
		id, dial := printerDialer(*printerAddr)
		cfg := printer.DefaultConfig(id, dial)
		cfg.PollInterval = 2 * time.Second
		cfg.Logger = logger
		p := printer.New(cfg, bus)
		if err := p.Open(ctx); err != nil {
			return err
		}
		closers = append(closers, p.Close)
	}
	fmt.Fprintln(m.Stdout, "watching; Ctrl-C to stop")
	w := &eventPrinter{out: m.Stdout, reveal: *reveal}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-events:
			if !ok {
				return nil
			}
			w.print(e)
		}
	}
}

func printerDialer(addr string) (devices.ID, printer.Dialer) {
	switch {
	case strings.HasPrefix(addr, "serial:"):
		p := strings.TrimPrefix(addr, "serial:")
		return devices.ID{Path: p}, printer.Serial(p, printer.DefaultSerialMode())
	case strings.HasPrefix(addr, "/dev/"):
		return devices.ID{Path: addr}, printer.USBLP(addr)
	}
	return devices.ID{Path: "tcp:" + addr}, printer.TCP(addr)
}

// eventPrinter writes one line per event.
type eventPrinter struct {
	mu     sync.Mutex
	out    io.Writer
	reveal bool
}

func (p *eventPrinter) value(v string) string {
	if p.reveal {
		return v
	}
	return devices.Redact(v)
}

func (p *eventPrinter) print(e devices.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := e.Time().Format("15:04:05.000")
	switch v := e.(type) {
	case devices.Scan:
		aim := v.AIM
		if aim == "" {
			aim = "-"
		}
		fmt.Fprintf(p.out, "%s scan    %s %s %s %s\n", ts, v.Device, v.Symbology, aim, p.value(v.Label))
	case devices.Tap:
		kind := "card"
		if v.RandomUID {
			kind = "random-uid (phone or bank card, not a loyalty card)"
		}
		fmt.Fprintf(p.out, "%s tap     %s %d-byte uid %s %s\n", ts, v.Device, len(v.UID), p.value(strings.ToUpper(hex.EncodeToString(v.UID))), kind)
	case devices.ReadError:
		fmt.Fprintf(p.out, "%s error   %s %s: %s\n", ts, v.Device, v.Code, v.Reason)
	case devices.HealthEvent:
		fmt.Fprintf(p.out, "%s health  %s %s power=%s %s: %s\n", ts, v.Device, v.State, v.Power, v.Code, v.Reason)
	default:
		fmt.Fprintf(p.out, "%s event   %T from %s\n", ts, e, e.Source())
	}
}
