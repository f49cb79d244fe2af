package journal

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Defaults for Options.
const (
	DefaultBusyTimeout     = 5 * time.Second
	DefaultMaxBatch        = 256
	DefaultSidecarInterval = time.Second
)

// Options configure a journal. Terminal is required to create a journal;
// when opening an existing one it must match the stored terminal or be empty.
type Options struct {
	Terminal string
	Store    string
	// Now reads the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives epoch changes and storage failures; slog.Default when nil.
	Logger *slog.Logger

	// ReadOnly opens an existing journal for inspection (the CLI): no
	// migration, no continuity check, no epoch change, and every write fails.
	ReadOnly bool
	// BusyTimeout is how long a statement waits for another process's lock.
	BusyTimeout time.Duration
	// MaxBatch caps how many requests share one group commit.
	MaxBatch int
	// SidecarInterval is how often, at most, the high-water mark in the
	// sidecar file is refreshed after commits.
	SidecarInterval time.Duration
	// MinEpoch is the lowest epoch the journal may write in, from the
	// terminal's enrollment (the cloud holds the epochs below it for this
	// terminal ID, perhaps another till's). A journal below it starts
	// MinEpoch when it opens; 0 sets no floor.
	MinEpoch uint32
}

// Journal is a terminal's durable journal. Its methods are safe for
// concurrent use; Close it once done.
type Journal struct {
	path string
	opts Options
	log  *slog.Logger

	rdb *sql.DB // readers (a pool)
	wdb *sql.DB // one connection, used only by the writer goroutine

	id       string    // random identity of this database file
	created  time.Time // when this database file was created
	terminal string
	store    string
	hlc      loyalty.HLClock

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	reqs   chan *request
	quit   chan struct{}
	done   chan struct{}

	w writer // owned by the writer goroutine once Open returns

	// views caches local views of cards (see viewCache); nil when the
	// journal is opened read-only, as another process may be writing it.
	views *viewCache
}

// Open opens the journal at path, creating it if needed (unless
// opts.ReadOnly), applies migrations, checks continuity and starts a new
// epoch when it was lost (see the package doc).
func Open(ctx context.Context, path string, opts Options) (*Journal, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.SidecarInterval <= 0 {
		opts.SidecarInterval = DefaultSidecarInterval
	}
	if len(opts.Terminal) > loyalty.MaxFieldLen || len(opts.Store) > loyalty.MaxFieldLen {
		return nil, fmt.Errorf("%w: terminal and store ids are at most %d bytes", ErrInvalid, loyalty.MaxFieldLen)
	}
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open journal %s: %w (check the --db path)", path, err)
		}
	} else if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("open journal %s: the directory %s does not exist: create it first", path, filepath.Dir(path))
	}
	j := &Journal{
		path: path,
		opts: opts,
		log:  opts.Logger.With(slog.String("component", "journal"), slog.String(logPath, path)),
		reqs: make(chan *request, opts.MaxBatch),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	j.hlc.Now = opts.Now
	if !opts.ReadOnly {
		j.views = newViewCache()
	}
	if err := j.open(ctx); err != nil {
		j.closeDBs()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	if opts.ReadOnly {
		j.closed = true
		close(j.done)
		return j, nil
	}
	go j.run()
	return j, nil
}

func dsn(path string, busy time.Duration, readOnly, writer bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(busy.Milliseconds(), 10))
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "FULL")
	if !readOnly {
		q.Set("_journal_mode", "WAL")
	}
	if writer {
		q.Set("_txlock", "immediate")
	} else {
		q.Set("_query_only", "on")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func (j *Journal) open(ctx context.Context) error {
	var err error
	if !j.opts.ReadOnly {
		if j.wdb, err = sql.Open("sqlite", dsn(j.path, j.opts.BusyTimeout, false, true)); err != nil {
			return err
		}
		j.wdb.SetMaxOpenConns(1)
		j.wdb.SetMaxIdleConns(1)
		j.wdb.SetConnMaxLifetime(0)
		j.wdb.SetConnMaxIdleTime(0)
		if err := j.migrate(ctx); err != nil {
			return err
		}
	}
	if j.rdb, err = sql.Open("sqlite", dsn(j.path, j.opts.BusyTimeout, j.opts.ReadOnly, false)); err != nil {
		return err
	}
	j.rdb.SetMaxOpenConns(4)
	if j.opts.ReadOnly {
		if err := j.checkSchema(ctx, j.rdb); err != nil {
			return err
		}
	}
	if err := j.loadIdentity(ctx); err != nil {
		return err
	}
	if j.opts.ReadOnly {
		return nil
	}
	if err := j.checkContinuity(ctx); err != nil {
		return err
	}
	if err := j.w.load(ctx, j.wdb); err != nil {
		return err
	}
	if last, err := j.lastHLC(ctx); err != nil {
		return err
	} else {
		j.hlc.Observe(last)
	}
	return nil
}

// Close finishes the requests already queued, records the high-water mark
// and closes the database. It is safe to call more than once.
func (j *Journal) Close() error {
	j.mu.Lock()
	wasOpen := !j.closed
	j.closed = true
	j.mu.Unlock()
	if wasOpen {
		close(j.quit)
		<-j.done
	}
	return j.closeDBs()
}

func (j *Journal) closeDBs() error {
	// Readers first: the writer's connection, closing last, checkpoints the
	// WAL into the database file and removes it, leaving one file.
	var errs []error
	if j.rdb != nil {
		errs = append(errs, j.rdb.Close())
		j.rdb = nil
	}
	if j.wdb != nil {
		errs = append(errs, j.wdb.Close())
		j.wdb = nil
	}
	return errors.Join(errs...)
}

// Path returns the database file's path.
func (j *Journal) Path() string { return j.path }

// Terminal returns the terminal the journal belongs to.
func (j *Journal) Terminal() string { return j.terminal }

// Store returns the store the journal's terminal belongs to.
func (j *Journal) Store() string { return j.store }

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one embedded schema step; version is its file's number.
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with its number", e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(a, b int) bool { return ms[a].version < ms[b].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies the migrations the database lacks, each in its own
// transaction together with its PRAGMA user_version.
func (j *Journal) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	var have int
	if err := j.wdb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", classify(err))
	}
	if have > len(ms) {
		return fmt.Errorf("%w (schema version %d, this build knows %d)", ErrSchemaTooNew, have, len(ms))
	}
	if have == 0 {
		var n int
		if err := j.wdb.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			return fmt.Errorf("read schema: %w", classify(err))
		}
		if n > 0 {
			return fmt.Errorf("%w: the database already holds %d other tables; pick another path", ErrNotJournal, n)
		}
	}
	for _, m := range ms[have:] {
		tx, err := j.wdb.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, classify(err))
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, classify(err))
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", m.name, classify(err))
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, classify(err))
		}
	}
	return nil
}

// checkSchema refuses a database that is not a journal this build can read.
func (j *Journal) checkSchema(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	var have int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", classify(err))
	}
	switch {
	case have == 0:
		return fmt.Errorf("%w: no journal schema in the file", ErrNotJournal)
	case have > len(ms):
		return fmt.Errorf("%w (schema version %d, this build knows %d)", ErrSchemaTooNew, have, len(ms))
	}
	return nil
}

// loadIdentity reads (and on a new database writes) the journal's identity
// and checks it belongs to the configured terminal.
func (j *Journal) loadIdentity(ctx context.Context) error {
	db := j.rdb
	if !j.opts.ReadOnly {
		db = j.wdb
	}
	meta, err := readMeta(ctx, db)
	if err != nil {
		return err
	}
	if meta["journal_id"] == "" {
		if j.opts.ReadOnly {
			return fmt.Errorf("%w: it was never initialized", ErrNotJournal)
		}
		if j.opts.Terminal == "" {
			return fmt.Errorf("%w: a new journal needs the terminal id", ErrInvalid)
		}
		id, err := randomHex(16)
		if err != nil {
			return err
		}
		meta = map[string]string{"journal_id": id, "terminal": j.opts.Terminal, "store": j.opts.Store,
			"created_at": strconv.FormatInt(j.opts.Now().UnixNano(), 10)}
		if err := writeMetaTx(ctx, j.wdb, meta); err != nil {
			return err
		}
	}
	j.id, j.terminal, j.store = meta["journal_id"], meta["terminal"], meta["store"]
	if ns, err := strconv.ParseInt(meta["created_at"], 10, 64); err == nil {
		j.created = time.Unix(0, ns)
	}
	if j.opts.Terminal != "" && j.opts.Terminal != j.terminal {
		return fmt.Errorf("%w %q, not %q: point the agent at this terminal's own journal", ErrWrongTerminal, j.terminal, j.opts.Terminal)
	}
	if j.opts.Store != "" && j.opts.Store != j.store {
		return fmt.Errorf("%w: journal is for store %q, not %q: point the agent at this terminal's own journal", ErrWrongTerminal, j.store, j.opts.Store)
	}
	return nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func readMeta(ctx context.Context, q queryer) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT key, CAST(value AS TEXT) FROM meta")
	if err != nil {
		return nil, fmt.Errorf("read meta: %w", classify(err))
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read meta: %w", classify(err))
		}
		m[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read meta: %w", classify(err))
	}
	return m, nil
}

func writeMeta(ctx context.Context, e execer, kv map[string]string) error {
	for k, v := range kv {
		if _, err := e.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", k, v); err != nil {
			return fmt.Errorf("write meta %s: %w", k, classify(err))
		}
	}
	return nil
}

func writeMetaTx(ctx context.Context, db *sql.DB, kv map[string]string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write meta: %w", classify(err))
	}
	if err := writeMeta(ctx, tx, kv); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write meta: %w", classify(err))
	}
	return nil
}

func (j *Journal) lastHLC(ctx context.Context) (loyalty.HLC, error) {
	var body []byte
	err := j.wdb.QueryRowContext(ctx, "SELECT body FROM ops ORDER BY pos DESC LIMIT 1").Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read last op: %w", classify(err))
	}
	var op loyalty.Op
	if err := op.UnmarshalBinary(body); err != nil {
		return 0, fmt.Errorf("%w: last op: %w", ErrCorrupt, err)
	}
	return op.HLC, nil
}

// Log keys.
const (
	logPath   = "path"
	logEpoch  = "epoch"
	logSeq    = "seq"
	logReason = "reason"
	logError  = "error"
)
