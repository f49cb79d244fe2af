package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/internal/logevery"
	"github.com/tillpoint/tillpoint/loyalty"
)

var _ cloud.Ledger = (*Store)(nil)

// Dialect is the SQL flavour of a Store.
type Dialect int

const (
	SQLite Dialect = iota + 1
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// DialectOf returns the dialect Open gives dsn: Postgres for a
// "postgres://" or "postgresql://" URL, SQLite for anything else.
func DialectOf(dsn string) Dialect {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return Postgres
	}
	return SQLite
}

// Options tune a Store. The zero value is usable; Open fills defaults.
type Options struct {
	// Allowance decides each snapshot's offline allowance.
	Allowance cloud.AllowancePolicy
	// MaxRetries bounds how often a PostgreSQL transaction is retried after
	// a serialization failure, deadlock or unique violation (default 20).
	MaxRetries int
	// Logger receives retries and invariant failures (default slog.Default()).
	Logger *slog.Logger
}

// Store is a cloud.Ledger on SQLite or PostgreSQL.
type Store struct {
	dialect Dialect
	db      *sql.DB // writes (SQLite: one connection)
	rdb     *sql.DB // reads (SQLite: a pool; PostgreSQL: the same as db)
	source  string  // SQLite: the database's DSN, for a connection of BackupTo's own
	opts    Options
	log     *slog.Logger

	mu    sync.Mutex
	rules map[uint32]*loyalty.Rules // published rules never change

	// Prepared statements of db and rdb (SQLite only).
	wst, rst *stmtCache
	ckpt     *checkpointer // SQLite only
	seen     *seenCache    // (store, card) pairs known to be in card_stores

	// writersLock: the ledger's transactions lock the table
	// ledger_writers (see inTx); PostgreSQL only, and not on a server
	// without LOCK TABLE (CockroachDB).
	writersLock bool
	// retries counts transactions tried again after a conflict; reruns,
	// those tried a third time or more.
	retries, reruns atomic.Int64
	// aloneUntil: until then (Unix nanoseconds) every transaction runs
	// alone, as after a conflict (see inTx).
	aloneUntil atomic.Int64
	// fullAt: when (Unix nanoseconds) a write last found the storage
	// full (see classifyFull).
	fullAt atomic.Int64

	// conflictLog, fullLog and lostLog space the lines about conflicting
	// transactions, a full storage and lost connections.
	conflictLog, fullLog, lostLog logevery.Limiter

	// afterExpireChunk, when set (by tests), runs after each expiry
	// chunk commits.
	afterExpireChunk func()
}

// reportConflict counts a transaction that failed to serialize and ran
// again, and logs the count at most once every logevery.Interval.
func (s *Store) reportConflict(err error) {
	if n, log := s.conflictLog.Tick(); log {
		s.log.Info("ledger transactions conflicted with others and ran again alone: batches on the same members from several stores at once. Nothing is lost; ingest slows while it lasts",
			"conflicts", n, "last_err", err)
	}
}

// After a transaction failed to serialize, the ledger's transactions run
// one at a time for aloneAfterConflictPer times as long as its attempt
// took, at most aloneAfterConflict (see inTx).
const (
	aloneAfterConflictPer = 10
	aloneAfterConflict    = time.Second
)

// runAlone has every transaction run alone for d from now, unless they
// already do for longer.
func (s *Store) runAlone(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := s.aloneUntil.Load()
		if cur >= until || s.aloneUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// Open opens (creating if needed) and migrates a ledger. dsn is
// "sqlite:PATH", a bare file path, or a "postgres://" / "postgresql://" URL.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	return open(ctx, dsn, opts, len(migrations))
}

// open is Open with the schema brought only up to version (the first
// version migrations), as an older release left it.
func open(ctx context.Context, dsn string, opts Options, version int) (*Store, error) {
	if opts.Allowance == (cloud.AllowancePolicy{}) {
		opts.Allowance = cloud.DefaultAllowancePolicy()
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{opts: opts, log: opts.Logger.With("component", "ledger"), rules: map[uint32]*loyalty.Rules{}, seen: newSeenCache(seenCacheSize)}
	var err error
	switch {
	case DialectOf(dsn) == Postgres:
		s.dialect = Postgres
		if s.db, err = sql.Open("pgx", pgDSN(dsn)); err != nil {
			return nil, fmt.Errorf("open postgres ledger: %w", err)
		}
		s.db.SetMaxOpenConns(16)
		s.db.SetMaxIdleConns(16)
		s.rdb = s.db
	default:
		s.dialect = SQLite
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, fmt.Errorf("%w: empty ledger path; pass --db sqlite:PATH or a postgres:// URL", cloud.ErrInvalidInput)
		}
		if err := createPrivate(path); err != nil {
			return nil, err
		}
		base := "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)"
		s.source = base
		// The writer keeps a large page cache; readers, whose caches are
		// reset whenever the writer commits, keep the default.
		if s.db, err = sql.Open("sqlite", base+"&_pragma=cache_size(-65536)&_pragma=wal_autocheckpoint("+strconv.Itoa(backstopCheckpointPages)+")&_txlock=immediate"); err != nil {
			return nil, fmt.Errorf("open sqlite ledger %s: %w", path, err)
		}
		s.db.SetMaxOpenConns(1)
		if s.rdb, err = sql.Open("sqlite", base+"&_pragma=query_only(1)"); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("open sqlite ledger %s: %w", path, err)
		}
		s.rdb.SetMaxOpenConns(4)
		ckpt, err := sql.Open("sqlite", base)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("open sqlite ledger %s: %w", path, err)
		}
		s.ckpt = startCheckpointer(ckpt, s.log)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to %s ledger: %w; check --db and that the database is running", s.dialect, err)
	}
	if err := s.migrate(ctx, version); err != nil {
		s.Close()
		return nil, err
	}
	if s.dialect == SQLite {
		s.wst, s.rst = newStmtCache(s.db), newStmtCache(s.rdb)
		return s, nil
	}
	if version >= writersTableVersion { // an older release's schema has no ledger_writers
		if err := s.probeWritersLock(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.warnAboutServer(ctx)
	return s, nil
}

// probeWritersLock checks that the server locks tables, as the ledger's
// transactions do (see inTx). A server without LOCK TABLE (CockroachDB)
// gets no lock: its conflicting transactions are retried side by side.
func (s *Store) probeWritersLock(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("try the ledger's writers lock: %w", err)
	}
	_, err = tx.ExecContext(ctx, lockWriters)
	tx.Rollback()
	switch {
	case err == nil:
		s.writersLock = true
	case noTableLocks(err):
		s.log.Warn("the database cannot lock tables: transactions that conflict are retried side by side, and under heavy contention may give up", "err", err)
	default:
		return fmt.Errorf("try the ledger's writers lock (LOCK TABLE ledger_writers): %w; the cloud's database user must own the ledger's tables, or be granted UPDATE on ledger_writers", err)
	}
	return nil
}

// noTableLocks reports an error of a server that has no LOCK TABLE.
func noTableLocks(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42601" || pe.Code == "0A000") // syntax_error, feature_not_supported
}

// warnAboutServer logs the PostgreSQL server settings that slow the
// ledger down as it grows. Without autovacuum the planner's statistics
// stay as they were when the tables were small, and a batch's reads of
// lots by owner scan far more than they need: at 100,000 cards ingest ran
// at 5,370 ops/s against 7,180 to 8,380 once the tables were analyzed
// (docs/benchmarks.md). A server without PostgreSQL's settings
// (CockroachDB) gets no warning.
func (s *Store) warnAboutServer(ctx context.Context) {
	var autovacuum string
	err := s.db.QueryRowContext(ctx, `SELECT setting FROM pg_settings WHERE name = 'autovacuum'`).Scan(&autovacuum)
	if err == nil && autovacuum == "off" {
		s.log.Warn("PostgreSQL runs with autovacuum off: the ledger's tables get no fresh planner statistics as they grow, and ingest slows down; set autovacuum = on in postgresql.conf, or run VACUUM ANALYZE on the ledger's database every day")
	}
}

// pgDSN makes pgx describe each statement text once and then run it as an
// unnamed statement, planned with its actual arguments, in one round trip
// with binary parameters ("cache_describe"), unless the URL chooses a
// mode. pgx's default, named prepared statements, ended up with a cached
// generic plan made while the tables were small; the "exec" mode plans
// well but sends arrays as text, which cost more CPU than the ledger.
func pgDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // sql.Open reports it
	}
	q := u.Query()
	if q.Get("default_query_exec_mode") == "" {
		q.Set("default_query_exec_mode", "cache_describe")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Stats counts what the ledger's transactions went through since Open.
type Stats struct {
	// Retried counts transactions that conflicted with others (on
	// PostgreSQL: failed to serialize, deadlocked, or inserted a key
	// another inserted first) and ran again; Rerun, those that ran a
	// third time or more, which running again alone should prevent.
	Retried, Rerun int64
}

// Stats returns the ledger's counts since Open; safe for concurrent use.
func (s *Store) Stats() Stats {
	return Stats{Retried: s.retries.Load(), Rerun: s.reruns.Load()}
}

// Ping implements cloud.Ledger. It asks a reader connection, so that it
// answers while a batch holds SQLite's one writer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("ping the %s ledger: %w", s.dialect, err)
	}
	if at, full := s.fullSince(); full {
		return fmt.Errorf("%w: a write found no room %s ago", cloud.ErrStorageFull, time.Since(at).Round(time.Second))
	}
	return nil
}

// Dialect returns the store's SQL flavour.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB returns the write handle, for tests and tools that need raw SQL.
func (s *Store) DB() *sql.DB { return s.db }

// Close releases the database handles. It is safe to call twice.
func (s *Store) Close() error {
	var err error
	if s.ckpt != nil {
		err = s.ckpt.close()
		s.ckpt = nil
	}
	if s.rdb != nil && s.rdb != s.db {
		err = errors.Join(err, s.rdb.Close())
	}
	if s.db != nil {
		err = errors.Join(err, s.db.Close())
	}
	return err
}

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *Store) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// inTx runs fn in a write transaction and commits it, running it again
// after a serialization failure, a deadlock or a unique violation (another
// transaction inserted the same key first: the next attempt sees it), so fn
// must not keep state between attempts. On PostgreSQL a transaction whose
// connection broke before its commit runs again on another connection
// (at most maxReconnects times); one whose connection broke at its
// commit may have committed, and inTx returns cloud.ErrUnavailable: the
// caller's resend sorts it out (Apply answers a batch it applied as that
// batch's replay).
//
// SQLite has one writer (BEGIN IMMEDIATE), which is serializable. On
// PostgreSQL the transaction is REPEATABLE READ (snapshot isolation): every
// ledger transaction that changes an owner of points also writes that
// owner's row in "owners", a card's link writes the card's owner row, and
// a terminal's watermark is one row, so two transactions that could
// interfere always write a common row and the later one fails with 40001
// and is retried (first committer wins). SERIALIZABLE would add predicate
// locks on the time-ordered op IDs' index pages, which made concurrent
// terminals abort each other on nearly every batch.
//
// A transaction that failed so runs again alone: at its start every
// ledger transaction locks the table ledger_writers, which holds no rows,
// a first attempt in a mode that its like share (lockWriters), a retry in
// one that excludes every other (lockWritersAlone). The retry waits for
// the attempts in flight to end, new ones wait for it, and no other
// ledger transaction can make it fail again: LOCK TABLE, unlike a query,
// does not fix a REPEATABLE READ transaction's snapshot, so the retry's is
// taken after the wait. The lock is the transaction's, released when it
// ends, so it holds behind a pooler that hands each transaction to
// another server session (PgBouncer's transaction pooling); the session
// advisory lock that served before stayed there with a session the ledger
// no longer had, and every other transaction waited for it. For a while
// after a conflict (ten times as long as the attempt that failed took, at
// most aloneAfterConflict) first attempts run alone too: where batches keep
// sharing owners, one at a time applies more than side by side, and a
// conflict between small transactions costs a few milliseconds of one at a
// time, not a second. Before this, four terminals sending batches on the
// same 10,000 cards failed each other until one gave up after 21 attempts;
// now they apply about 8,000 ops/s, where one terminal alone applies about
// 9,500 and four on cards of their own 13,400 to 15,700
// (docs/benchmarks.md).
func (s *Store) inTx(ctx context.Context, fn func(tx *dbtx) error) error {
	var opts *sql.TxOptions
	if s.dialect == Postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead}
	}
	attempt, reconnects := 0, 0 // conflicts, and connections lost before the commit
	for {
		start := time.Now()
		alone := attempt > 0 || start.UnixNano() < s.aloneUntil.Load()
		err := s.tryTx(ctx, opts, alone, fn)
		var backoff time.Duration
		switch {
		case s.dialect == Postgres && connectionLost(ctx, err):
			// Before the commit the transaction did not happen: it runs
			// again on another connection. At the commit it may have,
			// and the caller hears that this is not known.
			if errors.As(err, new(*commitError)) || reconnects == maxReconnects {
				return s.unavailable(err)
			}
			reconnects++
			s.log.Warn("the connection to PostgreSQL broke before the transaction committed; running it again on another", "err", err)
			backoff = time.Duration(reconnects) * 100 * time.Millisecond
		case s.dialect == SQLite && sqliteLocked(err):
			return s.locked(err)
		case err == nil || !retryable(err) || attempt >= s.opts.MaxRetries:
			return s.classifyFull(err)
		default:
			s.runAlone(min(aloneAfterConflict, aloneAfterConflictPer*time.Since(start)))
			if attempt == 0 {
				s.retries.Add(1)
				s.reportConflict(err)
			} else if attempt == 1 {
				s.reruns.Add(1)
			}
			s.log.Debug("retrying ledger transaction", "attempt", attempt+1, "err", err)
			backoff = time.Duration(1<<min(attempt, 6)) * time.Millisecond
			backoff += rand.N(backoff)
			attempt++
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("retry ledger transaction: %w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// writersTableVersion is the migration that makes the table ledger_writers.
const writersTableVersion = 12

// The ledger's writers' lock (see inTx). ROW SHARE conflicts only with
// EXCLUSIVE and ACCESS EXCLUSIVE; PostgreSQL takes it on its fast path,
// outside the shared lock table, while no stronger lock is asked for.
//
// A first attempt fixes its snapshot (SELECT 1, sent with the lock in one
// round trip: pgx sends a statement without arguments as a simple query)
// before it waits, so that one that waited behind a retry running alone
// and writes what that retry wrote fails at its first such write and
// runs alone in turn, instead of going on beside the attempts that waited
// with it until the first of them commits: without it, four terminals on
// the same cards applied 12% fewer ops/s (docs/benchmarks.md).
const (
	lockWriters      = `SELECT 1; LOCK TABLE ledger_writers IN ROW SHARE MODE`
	lockWritersAlone = `LOCK TABLE ledger_writers IN EXCLUSIVE MODE`
)

// tryTx runs fn in one transaction; alone asks, on PostgreSQL, that no
// other ledger transaction run beside it (see inTx).
func (s *Store) tryTx(ctx context.Context, opts *sql.TxOptions, alone bool, fn func(tx *dbtx) error) error {
	// On PostgreSQL the transaction keeps its connection at hand, for the
	// COPYs of its larger inserts (copyRows).
	var conn *sql.Conn
	begin := s.db.BeginTx
	if s.dialect == Postgres {
		var err error
		if conn, err = s.db.Conn(ctx); err != nil {
			return fmt.Errorf("begin ledger transaction: %w", err)
		}
		defer conn.Close()
		begin = conn.BeginTx
	}
	tx, err := begin(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin ledger transaction: %w", err)
	}
	if s.writersLock {
		lock := lockWriters
		if alone {
			lock = lockWritersAlone
		}
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			tx.Rollback()
			return fmt.Errorf("wait for the ledger's other writers: %w", err)
		}
	}
	t := &dbtx{Tx: tx, s: s, cache: s.wst, conn: conn}
	defer t.prepareMissing(ctx)
	// A panic must end the transaction before prepareMissing runs: on
	// SQLite it holds the one writer connection, which the preparing
	// would wait for forever, and every later write with it.
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
	}()
	err = fn(t)
	if err == nil {
		err = t.flush(ctx)
	}
	if err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return &commitError{err}
	}
	if s.ckpt != nil {
		s.ckpt.wrote()
	}
	return nil
}

// retryable reports a PostgreSQL serialization failure, deadlock or
// unique violation.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "23505"
	}
	return false
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// inList returns "?,?,?" for n values.
func inList(n int) string {
	if n == 0 {
		return "NULL"
	}
	return strings.Repeat("?,", n-1) + "?"
}

// chunks calls fn with slices of at most size elements.
func chunks[T any](xs []T, size int, fn func([]T) error) error {
	for len(xs) > 0 {
		n := min(len(xs), size)
		if err := fn(xs[:n]); err != nil {
			return err
		}
		xs = xs[n:]
	}
	return nil
}

// createPrivate creates a new SQLite ledger file readable by its owner
// only, as backups, keys and card keys are: the ledger holds the stores'
// gossip keys. SQLite gives the -wal and -shm files the same mode. An
// existing file is left as it is.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create sqlite ledger %s: %w", path, err)
	}
	return f.Close()
}
