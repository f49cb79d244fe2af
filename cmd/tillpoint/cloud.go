package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/internal/metrics"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

const cloudHelp = `
Runs the central ledger: batch ingest, signed snapshots and rules for the
terminals, enrollment and the admin API. The database is migrated on start.
The cloud's Ed25519 signing key is read from --key, or generated there (mode
0600) on first start; terminals pin its public key when they enroll. The
program's card hash key is read from --card-key, or generated there (mode
0600): every terminal gets it at enrollment, sealed to it, with its store's
roster and gossip keyring.

Subcommands (each takes --db too; run 'tillpoint cloud SUBCOMMAND --help'):
  enroll-code --store S --terminal T   make a one-time enrollment code
  revoke --terminal T                  stop accepting a terminal's batches
  check                                replay the ledger and compare every balance
  expire                               lapse the points past their expiry now
  backup --to FILE                     copy a SQLite ledger while it serves (see its --help
                                       for restoring)
  publish-rules --file RULES.json      publish a version of the earn rules
  rotate-gossip-key --store S [--finish]
                                       give a store's tills a new gossip key; --finish drops the old one

The admin API (/v1/admin/...) needs a token: put one in a file given with
--admin-token-file, or in the environment as TILLPOINT_ADMIN_TOKEN. With the
same token as a bearer token, GET /metrics serves Prometheus metrics:
requests by route and outcome, ops applied and rejected by reason, batches
being applied, the ledger's retried transactions, point expiry runs, and
when the TLS certificate served expires.

Points past their expiry lapse about every --expire-every (give or take a
tenth, so that several clouds over one database drift apart), first at
start; set it to 0 where 'tillpoint cloud expire' runs from cron instead.
Of several clouds over one database, one at a time runs expiry (it holds a
lease in the database); the others skip that run.

On PostgreSQL the cloud may connect through a pooler, PgBouncer's
transaction pooling included, and may run as a role that only reads and
writes rows once the database's owner has run it after an upgrade (it
says so when a migration is missing). While the database does not answer,
requests get 503 with Retry-After and the tills send their batches again;
a batch whose commit's answer was lost is asked for again and answered
once.

GET /healthz answers while the process runs; GET /readyz answers 503 while
the database does not answer, or for a while after a write found its disk
full (batches it had no room for are refused with 503 storage_full, and
the tills send them again).

Examples:
  tillpoint cloud --db sqlite:/var/lib/tillpoint/cloud.db --listen :8443 \
      --tls-cert /etc/tillpoint/cert.pem --tls-key /etc/tillpoint/key.pem
  tillpoint cloud --db postgres://tillpoint@db/tillpoint --key /etc/tillpoint/cloud.key
`

// defaultCloudDB is where an embedded cloud keeps its ledger.
const defaultCloudDB = "sqlite:tillpoint-cloud.db"

func (m *Main) runCloud(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "enroll-code":
			return m.runCloudEnrollCode(ctx, args[1:])
		case "revoke":
			return m.runCloudRevoke(ctx, args[1:])
		case "check":
			return m.runCloudCheck(ctx, args[1:])
		case "publish-rules":
			return m.runCloudPublishRules(ctx, args[1:])
		case "rotate-gossip-key":
			return m.runCloudRotateGossipKey(ctx, args[1:])
		case "expire":
			return m.runCloudExpire(ctx, args[1:])
		case "backup":
			return m.runCloudBackup(ctx, args[1:])
		}
	}
	fs := newFlagSet(m.Stderr, "cloud", "cloud [--db sqlite:PATH|postgres://...] [--listen ADDR] [flags]\n       tillpoint cloud enroll-code|revoke|check|expire|backup|publish-rules|rotate-gossip-key [flags]", cloudHelp)
	db := fs.String("db", defaultCloudDB, "the ledger database: sqlite:PATH or postgres://...")
	listen := fs.String("listen", server.DefaultAddr, "the address to serve on")
	tlsCert := fs.String("tls-cert", "", "PEM certificate chain for HTTPS (with --tls-key); a renewed pair is loaded within a minute, without a restart")
	tlsKey := fs.String("tls-key", "", "PEM private key for HTTPS (with --tls-cert)")
	keyPath := fs.String("key", "", "the cloud's signing key file (default: cloud.key beside a SQLite database; required with PostgreSQL)")
	cardKeyPath := fs.String("card-key", "", "the program's card hash key file (default: card.key beside the signing key)")
	gossipGrace := fs.Duration("gossip-key-grace", server.DefaultGossipKeyGrace, "how long tills keep a gossip key a rotation replaced")
	program := fs.String("program", "tillpoint", "the loyalty program's ID, bound into every signature")
	adminTokenFile := fs.String("admin-token-file", "", "file holding the admin API token (or set TILLPOINT_ADMIN_TOKEN)")
	logFormat := fs.String("log-format", "json", "log format on stderr: json or text")
	maxBatch := fs.Int64("max-batch-bytes", server.DefaultMaxBatchBytes, "largest batch body accepted")
	expireEvery := fs.Duration("expire-every", defaultExpireEvery, "how often to lapse expired points, first at start; 0 leaves it to 'tillpoint cloud expire'")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *expireEvery < 0 {
		return usageError("--expire-every %v: want a duration, or 0 to run no expiry", *expireEvery)
	}
	if fs.NArg() > 0 {
		return usageError("unknown subcommand %q; want enroll-code, revoke, check, expire, backup, publish-rules or rotate-gossip-key", fs.Arg(0))
	}
	logger, err := newLogger(m.Stderr, *logFormat)
	if err != nil {
		return err
	}
	if *keyPath == "" {
		if *keyPath, err = defaultKeyPath(*db); err != nil {
			return err
		}
	}
	token, err := m.adminToken(*adminTokenFile)
	if err != nil {
		return err
	}

	ledger, err := openLedger(ctx, *db, logger)
	if err != nil {
		return err
	}
	defer ledger.Close()

	key, created, err := server.LoadOrCreateKey(*keyPath)
	if err != nil {
		return err
	}
	if created {
		logger.Info("generated the cloud signing key", "path", *keyPath)
	}
	if *cardKeyPath == "" {
		*cardKeyPath = filepath.Join(filepath.Dir(*keyPath), "card.key")
	}
	cardKey, created, err := server.LoadOrCreateCardKey(*cardKeyPath)
	if err != nil {
		return err
	}
	if created {
		logger.Info("generated the program's card key; back it up; every card hash depends on it", "path", *cardKeyPath)
	}
	srv := server.New(ledger, key, *program)
	srv.CardKey = cardKey
	srv.GossipKeyGrace = *gossipGrace
	srv.Addr = *listen
	srv.TLSCertFile, srv.TLSKeyFile = *tlsCert, *tlsKey
	srv.AdminToken = token
	srv.MaxBatchBytes = *maxBatch
	srv.Logger = logger.With("component", "server")
	registry := metrics.New()
	cm := newCloudMetrics(registry, srv, ledger)
	srv.Observer = cm
	srv.Metrics = registry.Handler()
	if err := srv.Open(); err != nil {
		return err
	}
	if *expireEvery > 0 {
		e := &expirer{ledger: ledger, log: logger.With("component", "expiry"), metrics: cm}
		ectx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.every(ectx, *expireEvery)
		}()
		defer func() { stop(); <-done }() // before the ledger closes
	}
	if len(token) == 0 {
		logger.Warn("admin API disabled: no --admin-token-file and no TILLPOINT_ADMIN_TOKEN")
	}
	if *tlsCert == "" {
		logger.Warn("serving plain HTTP; pass --tls-cert and --tls-key or put a TLS proxy in front")
	}
	fmt.Fprintf(m.Stdout, "tillpoint cloud listening on %s (program %s, cloud key %s)\n", srv.URL(), *program, batch.Fingerprint(key.Public().(ed25519.PublicKey)))
	<-ctx.Done()
	logger.Info("shutting down")
	return srv.Close(context.Background())
}

// newLogger returns the process's logger on w in format.
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	}
	return nil, usageError("--log-format %q: want json or text", format)
}

// defaultKeyPath puts the signing key beside a SQLite database.
func defaultKeyPath(db string) (string, error) {
	path, ok := strings.CutPrefix(db, "sqlite:")
	if !ok {
		return "", usageError("with --db %s, pass --key PATH for the cloud's signing key", redactDSN(db))
	}
	return filepath.Join(filepath.Dir(path), "cloud.key"), nil
}

// adminToken reads the admin token from file, else from TILLPOINT_ADMIN_TOKEN.
func (m *Main) adminToken(file string) ([]byte, error) {
	if file == "" {
		return []byte(strings.TrimSpace(m.Getenv("TILLPOINT_ADMIN_TOKEN"))), nil
	}
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("read --admin-token-file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 { // as for the signing and card keys
		return nil, fmt.Errorf("admin token file %s is readable by its group or others (mode %v): run chmod 600 %s", file, st.Mode().Perm(), file)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read --admin-token-file: %w", err)
	}
	token := []byte(strings.TrimSpace(string(b)))
	if len(token) == 0 {
		return nil, fmt.Errorf("admin token file %s is empty; put a token in it ('openssl rand -hex 32')", file)
	}
	return token, nil
}

// redactDSN hides the passwords in a database URL (its userinfo, and any
// query parameter named like password, which pgx and libpq read too) or in
// a keyword/value connection string.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.Opaque == "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
				u.RawQuery = q.Encode()
			}
		}
		return u.String()
	}
	return dsnPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// dsnPassword finds a password's value in a keyword/value connection
// string: password=secret or password = 'sec ret'.
var dsnPassword = regexp.MustCompile(`(?i)(\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

const enrollCodeHelp = `
Makes a one-time code that enrolls one terminal of one store. Give it to the
installer, who runs 'tillpoint enroll --cloud URL --code CODE' on the terminal.
The code works once and expires after --ttl.
`

func (m *Main) runCloudEnrollCode(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "cloud enroll-code", "cloud enroll-code --store S --terminal T [--db DB] [--ttl 24h]", enrollCodeHelp)
	db := fs.String("db", defaultCloudDB, "the ledger database: sqlite:PATH or postgres://...")
	store := fs.String("store", "", "the store the terminal belongs to")
	terminal := fs.String("terminal", "", "the terminal's ID, unique in the program")
	ttl := fs.Duration("ttl", server.DefaultEnrollCodeTTL, "how long the code stays valid")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *store == "" || *terminal == "" {
		return usageError("need --store S and --terminal T")
	}
	if *ttl <= 0 || *ttl > 30*24*time.Hour {
		return usageError("--ttl %v: want more than 0 and at most 720h", *ttl)
	}
	ledger, err := openExistingLedger(ctx, *db)
	if err != nil {
		return err
	}
	defer ledger.Close()
	now := time.Now().UTC()
	c, err := server.CreateEnrollCode(ctx, ledger, *store, *terminal, now, now.Add(*ttl).Truncate(time.Second))
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%s\n", c.Code)
	fmt.Fprintf(m.Stderr, "enrollment code for terminal %s of store %s, valid until %s\n", c.Terminal, c.Store, c.Expires.Format(time.RFC3339))
	return nil
}

const revokeHelp = `
Revokes a terminal: from now on the cloud refuses its batches and feeds, and
its store's roster marks it revoked, so the other tills stop trusting the
redeems it announces at their next roster refresh. Enrollment codes made
for it before and not used yet expire. It cannot be undone; a replaced
terminal enrolls again with a code made after the revoke. The store's
gossip key is not rotated: when the till was stolen, run
'tillpoint cloud rotate-gossip-key --store S' too.
`

func (m *Main) runCloudRevoke(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "cloud revoke", "cloud revoke --terminal T [--db DB]", revokeHelp)
	db := fs.String("db", defaultCloudDB, "the ledger database: sqlite:PATH or postgres://...")
	terminal := fs.String("terminal", "", "the terminal to revoke")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *terminal == "" {
		return usageError("need --terminal T")
	}
	ledger, err := openExistingLedger(ctx, *db)
	if err != nil {
		return err
	}
	defer ledger.Close()
	if err := ledger.RevokeTerminal(ctx, *terminal, time.Now()); err != nil {
		if errors.Is(err, cloud.ErrNotFound) {
			return fmt.Errorf("revoke: no terminal %q is enrolled in this ledger; check the ID and --db", *terminal)
		}
		return fmt.Errorf("revoke %s: %w", *terminal, err)
	}
	fmt.Fprintf(m.Stdout, "revoked terminal %s\n", *terminal)
	return nil
}

const rotateGossipKeyHelp = `
Rotates a store's gossip key in two steps, without restarting any till:

  tillpoint cloud rotate-gossip-key --store S            a new primary key
  tillpoint cloud rotate-gossip-key --store S --finish   drop the old key

The tills fetch the new keyring with their roster (as often as snapshots),
install the new key on every till of the store and switch to it; they keep
the old key so a till that learns late still understands the others. Run
--finish once every till has refreshed, or let the cloud's
--gossip-key-grace (default 24h) leave the old key out. Keys are never
printed: the output names them by key ID. The same is
POST /v1/admin/stores/S/gossip-key on a running cloud.
`

func (m *Main) runCloudRotateGossipKey(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "cloud rotate-gossip-key", "cloud rotate-gossip-key --store S [--finish] [--db DB]", rotateGossipKeyHelp)
	db := fs.String("db", defaultCloudDB, "the ledger database: sqlite:PATH or postgres://...")
	store := fs.String("store", "", "the store whose gossip key to rotate")
	finish := fs.Bool("finish", false, "remove the keys earlier rotations retired instead of rotating")
	grace := fs.Duration("grace", server.DefaultGossipKeyGrace, "keys retired longer ago than this are removed first (the cloud's --gossip-key-grace)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *store == "" {
		return usageError("need --store S")
	}
	ledger, err := openExistingLedger(ctx, *db)
	if err != nil {
		return err
	}
	defer ledger.Close()
	var (
		sr      cloud.StoreRoster
		removed int
	)
	if *finish {
		removed, sr, err = server.FinishGossipRotation(ctx, ledger, *store, time.Now())
	} else {
		sr, err = server.RotateGossipKey(ctx, ledger, *store, *grace, time.Now())
	}
	if err != nil {
		return err
	}
	r := server.NewGossipKeyResponse(sr, removed)
	if *finish {
		fmt.Fprintf(m.Stdout, "store %s: removed %d retired gossip key(s); primary %s (roster version %d)\n", r.Store, removed, r.Primary, r.RosterVersion)
		return nil
	}
	fmt.Fprintf(m.Stdout, "store %s: new primary gossip key %s, retired %s (roster version %d)\n", r.Store, r.Primary, strings.Join(r.Retired, ", "), r.RosterVersion)
	fmt.Fprintf(m.Stderr, "the tills switch at their next roster refresh; run again with --finish once they all have\n")
	return nil
}

const checkHelp = `
Replays the ledger and compares every balance: postings sum to zero per
transaction, each member's lots sum to their available balance, and the
sum over members equals the points liability. Exits 1 when anything is off.
`

func (m *Main) runCloudCheck(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "cloud check", "cloud check [--db DB]", checkHelp)
	return m.withLedger(ctx, fs, args, func(ledger *sqlstore.Store) error {
		report, err := ledger.Check(ctx)
		printCheckReport(m.Stdout, report)
		if err != nil {
			return fmt.Errorf("the ledger does not balance; stop ingest and investigate before serving again: %w", err)
		}
		fmt.Fprintln(m.Stdout, "ok: every balance matches the ledger")
		return nil
	})
}

// withLedger runs a cloud subcommand that works on the ledger: it adds
// --db to fs, parses args, opens the ledger and calls fn with it.
func (m *Main) withLedger(ctx context.Context, fs *flag.FlagSet, args []string, fn func(*sqlstore.Store) error) error {
	db := fs.String("db", defaultCloudDB, "the ledger database: sqlite:PATH or postgres://...")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	ledger, err := openExistingLedger(ctx, *db)
	if err != nil {
		return err
	}
	defer ledger.Close()
	return fn(ledger)
}

// printCheckReport writes what the ledger check found.
func printCheckReport(w io.Writer, r cloud.CheckReport) {
	fmt.Fprintf(w, "accounts %d, transactions %d, owners %d, lots %d\n", r.Accounts, r.Transactions, r.Owners, r.Lots)
	fmt.Fprintf(w, "liability %d, debt %d; earned %d, redeemed %d, expired %d, adjusted %d, settled against debt %d\n",
		r.Liability, r.Debt, r.Earned, r.Redeemed, r.Expired, r.Adjusted, r.Settled)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
}

// openExistingLedger opens the ledger named by db for an operator's
// command: a SQLite file that is not there is an error (a typo in --db, a
// volume not mounted), not a new empty ledger to report on or write to.
func openExistingLedger(ctx context.Context, db string) (*sqlstore.Store, error) {
	if path, ok := strings.CutPrefix(db, "sqlite:"); ok && path != "" {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no ledger at %s: check --db, or start 'tillpoint cloud --db %s' once to create it", path, db)
		}
	}
	return openLedger(ctx, db, slog.New(slog.DiscardHandler))
}

// openLedger opens and migrates the ledger named by db.
func openLedger(ctx context.Context, db string, logger *slog.Logger) (*sqlstore.Store, error) {
	if !strings.HasPrefix(db, "sqlite:") && sqlstore.DialectOf(db) != sqlstore.Postgres {
		return nil, usageError("--db %q: want sqlite:PATH or postgres://...", redactDSN(db))
	}
	if path, ok := strings.CutPrefix(db, "sqlite:"); ok && path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create the ledger's directory: %w", err)
		}
	}
	// The store adds component=ledger to what it logs.
	s, err := sqlstore.Open(ctx, db, sqlstore.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", redactDSN(db), err)
	}
	return s, nil
}

const publishRulesHelp = `
Publishes a version of the program's earn rules (a loyalty.Rules JSON
document) in the ledger; terminals fetch it with GET /v1/rules. Publishing
the same version again changes nothing; other content under a published
version is refused: publish it as a new version. The same is
POST /v1/admin/rules on a running cloud.
`

func (m *Main) runCloudPublishRules(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "cloud publish-rules", "cloud publish-rules --file RULES.json [--db DB] [--program ID]", publishRulesHelp)
	db := fs.String("db", defaultCloudDB, "the ledger database: sqlite:PATH or postgres://...")
	file := fs.String("file", "", "the rules, as JSON")
	program := fs.String("program", "tillpoint", "the program the cloud serves; the rules must name it")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usageError("need --file RULES.json")
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("read rules: %w", err)
	}
	var rules loyalty.Rules
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rules); err != nil {
		return fmt.Errorf("parse %s: %w (see loyalty.Rules for the fields)", *file, err)
	}
	ledger, err := openExistingLedger(ctx, *db)
	if err != nil {
		return err
	}
	defer ledger.Close()
	hash, err := server.PublishRules(ctx, ledger, *program, rules, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "published rules version %d of program %s (hash %s)\n", rules.Version, rules.Program, hash)
	return nil
}
