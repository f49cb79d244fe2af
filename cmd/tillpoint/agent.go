package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tillpoint/tillpoint/agent"
	"github.com/tillpoint/tillpoint/agent/api"
	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/agent/screen"
	"github.com/tillpoint/tillpoint/agent/systemd"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/enroll"
)

const agentDescription = `
Runs the store terminal's agent: reads loyalty cards from the configured
scanners and NFC readers, records earn and redeem operations in the local
journal before it answers, prints the loyalty block, ships the journal to the
cloud, and serves the local API for POS apps (/v1, OpenAPI at
/v1/openapi.json), the cashier screen (/) and Prometheus metrics (/metrics).

Settings come from the defaults, then the --config file, then the flags
below. [sync] pull_interval (default 30s, 5s to 24h) is how often the rules
and member snapshots are pulled; they are also pulled at once when the link
to the cloud comes back. [sync] max_backoff (default 30s, 1s to 1h) caps the
wait between attempts while the cloud is unreachable. A [[scanner]] of kind
hid (keyboard wedge) is matched by usb = "VID:PID" or path =
"/dev/input/...", and grabbed exclusively unless grab = false.

--check-config checks the file and exits: 0 when it is valid, 1 with every
problem (file, line, key) otherwise.

Signals: SIGTERM or SIGINT shut down cleanly (in-flight requests and print
jobs finish, the journal is closed); a second one exits at once. SIGHUP
reloads the file (session.idle_timeout and log.level apply at once; other
changes are named in the log and need a restart). Under systemd
(Type=notify) it reports READY, RELOADING, STOPPING and WATCHDOG.`

// agentFlags are the command-line overrides of the config file.
type agentFlags struct {
	configPath string
	check      bool
	listen     string
	stateDir   string
	cloud      string
	logLevel   string
	logFormat  string
	set        map[string]bool
}

func (f *agentFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.configPath, "config", "/etc/tillpoint/agent.toml", "configuration `file` (see packaging/agent.toml)")
	fs.BoolVar(&f.check, "check-config", false, "check the configuration and exit")
	fs.StringVar(&f.listen, "listen", "", "local API `address`, overrides listen")
	fs.StringVar(&f.stateDir, "state-dir", "", "state `directory`, overrides state_dir")
	fs.StringVar(&f.cloud, "cloud", "", "cloud `URL`, overrides cloud.url")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error; overrides log.level")
	fs.StringVar(&f.logFormat, "log-format", "", "json or text; overrides log.format")
}

// load reads the file and applies the flags that were given.
func (f *agentFlags) load() (*config.Config, error) {
	cfg, err := config.ReadFile(f.configPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no configuration at %s: pass --config FILE (packaging/agent.toml is a commented example)", f.configPath)
	}
	if err != nil {
		return nil, err
	}
	over := map[string]func(){
		"listen":     func() { cfg.Listen = f.listen },
		"state-dir":  func() { cfg.StateDir = f.stateDir },
		"cloud":      func() { cfg.Cloud.URL = f.cloud },
		"log-level":  func() { cfg.Log.Level = f.logLevel },
		"log-format": func() { cfg.Log.Format = f.logFormat },
	}
	for name, apply := range over {
		if f.set[name] {
			apply()
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("after command-line flags: %w", err)
	}
	return cfg, nil
}

func (m *Main) runAgent(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "agent", "agent [--config FILE] [--check-config] [flags]", agentDescription)
	var f agentFlags
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q; flags only (see 'tillpoint agent --help')", fs.Arg(0))
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	cfg, err := f.load()
	if err != nil {
		return err
	}
	if f.check {
		printer := "none (the POS prints)"
		if cfg.Printer != nil {
			printer = fmt.Sprintf("%d columns, %s", cfg.Printer.Width, cfg.Printer.CodePage)
		}
		peers, conflicts, err := checkPeers(cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "%s: ok\n  listen     %s\n  state_dir  %s\n  cloud      %s\n  scanners   %d\n  nfc        %d\n  printer    %s\n  peers      %s\n",
			f.configPath, cfg.Listen, cfg.StateDir, orNone(cfg.Cloud.URL), len(cfg.Scanners), len(cfg.NFC), printer, peers)
		if len(conflicts) > 0 {
			for _, c := range conflicts {
				fmt.Fprintf(m.Stdout, "  CONFLICT   %s\n", c)
			}
			return fmt.Errorf("%s: [peers] conflicts with the store roster the cloud handed out (%d problem(s) above)", f.configPath, len(conflicts))
		}
		return nil
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	logger := newAgentLogger(m.Stderr, cfg.Log.Format, level)
	notifier := systemd.FromEnv(m.Getenv)
	return m.serveAgent(ctx, &f, cfg, level, logger, notifier)
}

// checkPeers summarizes where the store peers' roster and keyring come
// from, and lists where agent.toml's [peers] contradicts the enrollment's.
func checkPeers(cfg *config.Config) (summary string, conflicts []string, err error) {
	if !cfg.Peers.Enabled {
		return "off", nil, nil
	}
	var cloud *enroll.Roster
	enrolled := false
	switch st, err := enroll.Load(cfg.EnrollmentDir()); {
	case errors.Is(err, enroll.ErrNotEnrolled):
	case err != nil:
		return "", nil, fmt.Errorf("peers: %w", err)
	default:
		cloud, enrolled = st.Roster, true
	}
	var roster, keys string
	switch {
	case len(cfg.Peers.Roster) > 0:
		roster = fmt.Sprintf("%d tills in agent.toml's roster", len(cfg.Peers.Roster))
	case cloud != nil:
		roster = fmt.Sprintf("the cloud's roster (version %d, %d tills)", cloud.Version(), len(cloud.Doc.Terminals))
	case !enrolled:
		return "", nil, errors.New("peers.enabled: no store roster: enroll the till ('tillpoint enroll --advertise IP:PORT') or list the tills in [[peers.roster]]")
	default:
		roster = "the cloud's roster, fetched at start (none kept yet)"
	}
	switch {
	case cfg.Peers.GossipKeyFile != "":
		keys = "gossip key from " + cfg.Peers.GossipKeyFile
	case cloud != nil && len(cloud.GossipKeys) > 0:
		keys = "the cloud's gossip keyring"
	case cloud == nil && enrolled:
		keys = "the cloud's gossip keyring, fetched at start"
	default:
		return "", nil, errors.New("peers.enabled: no gossip key: enroll the till against a cloud that hands out the store's keyring, or set peers.gossip_key_file")
	}
	return fmt.Sprintf("on, bind %s, %s, %s", cfg.Peers.Bind, roster, keys), agent.PeersConflicts(cfg, cloud), nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(s)) // validated by config
	return l
}

func newAgentLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// readCardKey reads the program's card hash key: 32 raw bytes or 64 hex digits.
func readCardKey(path string) (loyalty.CardKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the card key: %w (write the program's card key there, or set cloud.card_key_file)", err)
	}
	if s := strings.TrimSpace(string(b)); len(s) == 64 {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("card key %s: want 32 bytes or 64 hex digits, got %d bytes", path, len(b))
	}
	return loyalty.CardKey(b), nil
}

// serveAgent runs the agent until ctx ends or a signal stops it.
func (m *Main) serveAgent(ctx context.Context, f *agentFlags, cfg *config.Config, level *slog.LevelVar, logger *slog.Logger, notifier *systemd.Notifier) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)

	w, err := openWiring(ctx, cfg, logger, Version, nil)
	if err != nil {
		return err
	}
	a := w.agent
	srv := api.NewServer(a, cfg.Listen)
	srv.Screen = screen.Handler()
	srv.Logger = logger
	if err := srv.Open(); err != nil {
		w.close(context.Background())
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.start(runCtx)
	go notifier.RunWatchdog(runCtx, a.Healthy)
	logger.Info("agent serving", "url", srv.URL(), "terminal", cfg.Terminal)
	fmt.Fprintf(m.Stdout, "tillpoint agent: serving on %s (cashier screen at %s/)\n", srv.URL(), srv.URL())
	notifier.Ready("serving on " + srv.URL())

	for stop := false; !stop; {
		select {
		case <-ctx.Done():
			stop = true
		case s := <-sigs:
			if s != syscall.SIGHUP {
				stop = true
				continue
			}
			notifier.Reloading()
			if next, err := f.load(); err != nil {
				logger.Error("reload refused: the agent keeps its configuration", "err", err)
			} else {
				level.Set(parseLevel(next.Log.Level))
				if keys := a.Reload(next); len(keys) > 0 {
					logger.Warn("reloaded; these settings change only after a restart", "keys", keys)
				}
			}
			notifier.Ready("serving on " + srv.URL())
		}
	}

	notifier.Stopping("shutting down")
	logger.Info("agent shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer scancel()
	go func() {
		select {
		case <-sigs:
			logger.Error("second signal: exiting at once")
			os.Exit(1)
		case <-sctx.Done():
		}
	}()
	errs := []error{srv.Close(sctx)}
	cancel()
	errs = append(errs, w.close(sctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("agent stopped cleanly")
	return nil
}
