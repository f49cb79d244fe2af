package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/discover"
	"github.com/tillpoint/tillpoint/devices/nfc"
	"github.com/tillpoint/tillpoint/devices/printer"
	"github.com/tillpoint/tillpoint/devices/scanner"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/offline/peers"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/enroll"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// wiring is an agent and what it is made of, in the order they start and
// the reverse order they stop.
type wiring struct {
	log      *slog.Logger
	journal  *journal.Journal
	agent    *agent.Agent
	bus      *devices.Bus
	printer  *printer.Printer
	jobs     *agent.PrintJobs // the printer's durable job log
	scanners []scannerDevice
	nfc      *nfc.Watcher
	uplink   *uplink.Uplink
	feed     *agent.Feed
	peers    *agent.StorePeers  // nil unless [peers] is enabled
	roster   agent.RosterSource // nil unless the peers follow the cloud's roster
	wg       sync.WaitGroup
}

// scannerDevice is a serial or HID scanner driver.
type scannerDevice interface {
	Open(ctx context.Context) error
	Close(ctx context.Context) error
}

var (
	_ scannerDevice = (*scanner.Serial)(nil)
	_ scannerDevice = (*scanner.HID)(nil)
)

// wireTuning changes what the demo and the tests need changed; nil for the
// real agent.
type wireTuning struct {
	uplink    func(*uplink.Config)
	feedEvery time.Duration
	syncPoll  time.Duration
	onOp      func(ctx context.Context, op loyalty.Op)
	peers     func(*peers.Config)
	// finder looks for devices; the zero value looks at the real system.
	finder discover.Finder
	// openInput opens a HID scanner's input device in place of
	// scanner.OpenEvdev (grab true) or scanner.OpenEvdevShared.
	openInput func(path string, grab bool) (io.ReadCloser, error)
}

// openWiring opens the journal, the devices and the agent described by cfg.
// On error everything opened so far is closed.
func openWiring(ctx context.Context, cfg *config.Config, logger *slog.Logger, version string, tune *wireTuning) (_ *wiring, err error) {
	if tune == nil {
		tune = &wireTuning{}
	}
	w := &wiring{log: logger, bus: devices.NewBus()}
	defer func() {
		if err != nil {
			w.close(context.WithoutCancel(ctx))
		}
	}()
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("create the state directory: %w", err)
	}
	key, err := readCardKey(cfg.CardKeyFile())
	if err != nil {
		return nil, err
	}
	st, err := enroll.Load(cfg.EnrollmentDir())
	switch {
	case errors.Is(err, enroll.ErrNotEnrolled) && cfg.Cloud.URL == "":
		logger.Warn("not enrolled and no cloud.url: the till works offline only; run 'tillpoint enroll' to connect it", "dir", cfg.EnrollmentDir())
		st = nil
	case err != nil:
		return nil, fmt.Errorf("enrollment: %w", err)
	default:
		// The enrollment names this till; it wins over the config file.
		if (cfg.Terminal != "" && cfg.Terminal != st.Terminal) || (cfg.Store != "" && cfg.Store != st.Store) {
			logger.Warn("the config's store and terminal differ from the enrollment's; using the enrollment's",
				"store", st.Store, "terminal", st.Terminal)
		}
		cfg.Terminal, cfg.Store = st.Terminal, st.Store
	}
	jopts := journal.Options{Terminal: cfg.Terminal, Store: cfg.Store, Logger: logger.With("component", "journal")}
	if st != nil {
		jopts.MinEpoch = st.Epoch
	}
	w.journal, err = journal.Open(ctx, filepath.Join(cfg.StateDir, "journal.db"), jopts)
	if err != nil {
		return nil, fmt.Errorf("open the journal: %w", err)
	}
	policy := journal.Policy{MaxSnapshotAge: cfg.Offline.MaxSnapshotAge.D(), OfflineRedeemCap: cfg.Offline.RedeemCapPerDay}
	rcpt, err := agent.NewReceiptRenderer(cfg, nil)
	if err != nil {
		return nil, err
	}
	var prn agent.Printer
	if cfg.Printer != nil {
		if w.jobs, err = agent.OpenPrintJobs(ctx, cfg.StateDir); err != nil {
			return nil, err
		}
		switch w.printer, err = openPrinter(tune.finder, cfg.Printer, w.jobs, w.bus, logger); {
		case errors.Is(err, errNotAttached):
		case err != nil:
			return nil, err
		default:
			prn = agent.DevicePrinter{P: w.printer}
		}
	}
	for i, s := range cfg.Scanners {
		sc, err := openScanner(tune, i, s, w.bus, logger)
		if errors.Is(err, errNotAttached) {
			continue
		}
		if err != nil {
			return nil, err
		}
		w.scanners = append(w.scanners, sc)
	}
	if len(cfg.NFC) > 0 {
		var names []string
		for _, r := range cfg.NFC {
			if r.Reader == "" {
				names = nil // one reader without a name: watch them all
				break
			}
			names = append(names, r.Reader)
		}
		w.nfc = nfc.NewWatcher(nfc.Config{Readers: names, Logger: logger.With("component", "nfc")}, w.bus)
	}
	opts := agent.Options{Config: cfg, Journal: agent.JournalStore{J: w.journal, Policy: policy},
		CardKey: key, Receipts: rcpt, Printer: prn, Logger: logger, Version: version, SyncPoll: tune.syncPoll, OnOp: tune.onOp,
		Backlog: w.journal.Backlog}
	if st != nil {
		rcpt.TerminalKey = st.Key
		if err := w.openUplink(cfg, st, logger, &opts, tune); err != nil {
			return nil, err
		}
	}
	if cfg.Peers.Enabled {
		if st == nil {
			return nil, errors.New("peers.enabled needs an enrolled terminal (its key signs the redeems it announces to the store): run 'tillpoint enroll' first, or disable [peers]")
		}
		if st.Roster == nil && w.feed != nil && (len(cfg.Peers.Roster) == 0 || cfg.Peers.GossipKeyFile == "") {
			// Enrolled before the cloud handed out rosters: fetch it once now.
			fetchCtx, cancel := context.WithTimeout(ctx, cfg.Cloud.Timeout.D())
			r, err := st.FetchRoster(fetchCtx, w.feed.Client, w.feed.URL, 0)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("store peers need the store roster and keyring and none is kept yet: %w; reach the cloud once, or set [peers] roster and gossip_key_file", err)
			}
			if err := st.SaveRoster(r); err != nil {
				return nil, err
			}
			st.Roster = r
		}
		if w.peers, err = agent.NewStorePeers(cfg, st.Key, st.Roster, w.journal, version, logger, tune.peers); err != nil {
			return nil, err
		}
		if w.feed != nil && (w.peers.From.Roster == agent.SourceCloud || w.peers.From.Keys == agent.SourceCloud) {
			w.roster = agent.CloudRoster{State: st, Client: w.feed.Client, URL: w.feed.URL}
		}
		opts.Journal, opts.Peers = w.peers.Journal(opts.Journal), w.peers
		if w.feed != nil {
			w.feed.PutSnapshots = w.peers.PutSnapshots(w.feed.PutSnapshots, cfg.Cloud.Timeout.D())
		}
	}
	w.agent, err = agent.Create(ctx, opts)
	if err != nil {
		return nil, err
	}
	if w.feed != nil {
		w.feed.Agent = w.agent
	}
	return w, nil
}

// openUplink makes the sender of the journal and the puller of the cloud's
// feeds for an enrolled terminal.
func (w *wiring) openUplink(cfg *config.Config, st *enroll.State, logger *slog.Logger, opts *agent.Options, tune *wireTuning) error {
	url := st.CloudURL
	if cfg.Cloud.URL != "" {
		url = cfg.Cloud.URL
	}
	signer, err := batch.NewSigner(st.Terminal, st.Program, st.Key)
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	client := &http.Client{Timeout: cfg.Cloud.Timeout.D()}
	uc := uplink.DefaultConfig()
	uc.URL, uc.Signer, uc.CloudKey, uc.Client = url, signer, st.CloudKey, client
	uc.RequestTimeout, uc.MaxBackoff = cfg.Cloud.Timeout.D(), cfg.Sync.MaxBackoff.D()
	uc.MinBackoff = min(uc.MinBackoff, uc.MaxBackoff)
	uc.Logger = logger.With("component", "uplink")
	if tune.uplink != nil {
		tune.uplink(&uc)
	}
	u, err := uplink.New(w.journal, uc)
	if err != nil {
		return fmt.Errorf("uplink: %w", err)
	}
	w.uplink = u
	w.feed = &agent.Feed{URL: url, Program: st.Program, Store: st.Store, CloudKey: st.CloudKey, Sign: st.SignRequest, Client: client,
		PutSnapshots: w.journal.PutSnapshots, Logger: logger.With("component", "feed"),
		Every: cfg.Sync.PullInterval.D(), MaxBackoff: cfg.Sync.MaxBackoff.D(), Online: func() bool { s := u.State(); return s.Online || s.LastErrorAt.IsZero() }}
	if tune.feedEvery > 0 {
		w.feed.Every = tune.feedEvery
	}
	opts.Uplink, opts.Notify = agent.UplinkState{U: u, Feed: w.feed}, u.Notify
	return nil
}

// deviceID resolves a config match to a device: by path as given, or by
// USB VID:PID (and serial number) among the attached serial ports and USB
// line printers, whose stable /dev/serial/by-id path it then uses, or, for
// a HID scanner (input true), among the input devices.
func deviceID(f discover.Finder, kind devices.Kind, m config.Match, input bool) (devices.ID, error) {
	id := devices.ID{Kind: kind, Path: strings.TrimPrefix(m.Path, "tcp://"), Serial: m.Serial}
	if m.USB != "" {
		vid, pid, _ := config.ParseUSB(m.USB)
		id.VID, id.PID = fmt.Sprintf("%04x", vid), fmt.Sprintf("%04x", pid)
	}
	if m.Path != "" {
		return id, nil
	}
	var found []discover.Device
	if input {
		found, _ = f.InputDevices()
	} else if ports, err := f.SerialPorts(); err == nil {
		found = append(found, ports...)
	}
	if kind == devices.KindPrinter {
		if lps, lerr := f.USBLinePrinters(); lerr == nil {
			found = append(found, lps...)
		}
	}
	want := devices.ID{VID: id.VID, PID: id.PID, Serial: id.Serial}
	for _, d := range found {
		if d.ID.Match(want) {
			id.Path = d.ID.Path
			return id, nil
		}
	}
	return id, fmt.Errorf("%s usb = %q is not attached (see 'tillpoint devices list'); plug it in, or set path", kind, m.USB)
}

func openPrinter(f discover.Finder, p *config.Printer, jobs printer.JobLog, bus *devices.Bus, logger *slog.Logger) (*printer.Printer, error) {
	id, err := deviceID(f, devices.KindPrinter, p.Match(), false)
	if err != nil {
		return nil, notAttached(bus, id, logger, err)
	}
	var dial printer.Dialer
	switch {
	case strings.HasPrefix(p.Path, "tcp://"):
		dial = printer.TCP(id.Path)
	case strings.HasPrefix(p.Path, "/dev/usb/lp"):
		dial = printer.USBLP(p.Path)
	default:
		mode := printer.DefaultSerialMode()
		if p.Baud > 0 {
			mode.BaudRate = p.Baud
		}
		dial = printer.Serial(p.Path, mode)
	}
	pc := printer.DefaultConfig(id, dial)
	pc.Logger, pc.Jobs = logger.With("component", "printer"), jobs
	return printer.New(pc, bus), nil
}

func openScanner(tune *wireTuning, i int, s config.Scanner, bus *devices.Bus, logger *slog.Logger) (scannerDevice, error) {
	id, err := deviceID(tune.finder, devices.KindScanner, s.Match(), s.Kind == "hid")
	if err != nil {
		return nil, notAttached(bus, id, logger, fmt.Errorf("scanner[%d]: %w", i, err))
	}
	if s.Kind == "hid" {
		return openHIDScanner(tune, id, s, bus, logger), nil
	}
	sc := scanner.DefaultConfig(id.Path)
	sc.ID = id
	if s.Baud > 0 {
		sc.Mode.BaudRate = s.Baud
	}
	if s.Suffix == "" {
		sc.Framing = scanner.FrameGap
	} else if sc.Framing, err = scanner.ParseFraming(strings.ToLower(s.Suffix)); err != nil {
		return nil, fmt.Errorf("scanner[%d]: %w", i, err)
	}
	sc.Logger = logger.With("component", "scanner")
	return scanner.NewSerial(sc, bus), nil
}

// openHIDScanner makes a keyboard-wedge scanner on the input device id,
// grabbed unless the config says grab = false.
func openHIDScanner(tune *wireTuning, id devices.ID, s config.Scanner, bus *devices.Bus, logger *slog.Logger) *scanner.HID {
	hc := scanner.DefaultHIDConfig(id.Path)
	hc.ID, hc.EndTab = id, s.Suffix == "TAB"
	hc.Logger = logger.With("component", "scanner")
	grab := s.Grabs()
	switch {
	case tune.openInput != nil:
		hc.OpenDevice = func(path string) (io.ReadCloser, error) { return tune.openInput(path, grab) }
	case grab:
		hc.OpenDevice = scanner.OpenEvdev
	default:
		hc.OpenDevice = scanner.OpenEvdevShared
	}
	return scanner.NewHID(hc, bus)
}

// errNotAttached marks a configured device that is not plugged in: the
// agent starts without it (cards still come from the other readers and the
// POS) and the cashier screen says so.
var errNotAttached = errors.New("device not attached")

func notAttached(bus *devices.Bus, id devices.ID, logger *slog.Logger, err error) error {
	logger.Error("device not attached; the till runs without it", "device", id.String(), "err", err)
	bus.Publish(devices.HealthEvent{Health: devices.Health{Device: id, State: devices.StateError, Power: devices.PowerOffline,
		Code: devices.CodeDisconnected, Reason: fmt.Sprintf("%s not attached: plug it in and restart the agent", id.Kind)}, At: time.Now()})
	return fmt.Errorf("%w: %w", errNotAttached, err)
}

// start opens the devices and runs the agent's loops.
func (w *wiring) start(ctx context.Context) {
	if err := w.agent.Start(ctx); err != nil {
		w.log.Error("start agent", "err", err)
	}
	if w.printer != nil {
		if err := w.printer.Open(ctx); err != nil {
			w.log.Warn("printer not ready; it keeps retrying", "err", err)
		}
	}
	for _, s := range w.scanners {
		if err := s.Open(ctx); err != nil {
			w.log.Warn("scanner not ready; it keeps retrying", "err", err)
		}
	}
	if w.nfc != nil {
		if err := w.nfc.Open(ctx); err != nil {
			w.log.Warn("NFC readers not ready; the watcher keeps retrying", "err", err)
		}
	}
	if w.peers != nil {
		if err := w.peers.Start(ctx); err != nil {
			w.log.Error("store peers not started: offline redeems use the isolated cap", "err", err)
		}
		if w.uplink != nil {
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				w.peers.FollowUplink(ctx, agent.UplinkState{U: w.uplink, Feed: w.feed}, time.Second)
			}()
		}
		if w.roster != nil {
			// The roster and keyring follow the cloud as the snapshots do.
			w.wg.Add(1)
			go func() { defer w.wg.Done(); w.peers.FollowRoster(ctx, w.roster, w.feed.Every) }()
		}
	}
	w.wg.Add(1)
	go func() { defer w.wg.Done(); w.agent.RunDevices(ctx, w.bus) }()
	if w.uplink != nil {
		w.uplink.Start(ctx)
	}
	if w.feed != nil {
		w.wg.Add(1)
		go func() { defer w.wg.Done(); w.feed.Run(ctx) }()
	}
}

// close stops everything that was opened, the journal last.
func (w *wiring) close(ctx context.Context) error {
	var errs []error
	if w.agent != nil {
		errs = append(errs, w.agent.Shutdown(ctx))
	}
	if w.uplink != nil {
		errs = append(errs, w.uplink.Shutdown(ctx))
	}
	if w.peers != nil {
		errs = append(errs, w.peers.Shutdown(ctx))
	}
	for _, s := range w.scanners {
		errs = append(errs, s.Close(ctx))
	}
	if w.nfc != nil {
		errs = append(errs, w.nfc.Close(ctx))
	}
	if w.printer != nil {
		// Close finishes the job in flight before it returns.
		errs = append(errs, w.printer.Close(ctx))
	}
	if w.jobs != nil {
		errs = append(errs, w.jobs.Close())
	}
	w.wg.Wait()
	if w.journal != nil {
		errs = append(errs, w.journal.Close())
	}
	return errors.Join(errs...)
}
