package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// BareInserter returns a function that stores rows of the ops table's
// shape in a table of the same shape without any ledger logic: one
// transaction per call, through the same multi-row statements (prepared
// the same way, on first use) that Apply uses. It is the baseline of the
// ingest benchmarks. A second call on the same store fills the same table.
func (s *Store) BareInserter(ctx context.Context) (func(args []any) error, error) {
	blob := "BLOB"
	if s.dialect == Postgres {
		blob = "BYTEA"
	}
	ddl := migrations[0]
	i := strings.Index(ddl, "CREATE TABLE ops (")
	j := strings.Index(ddl[i:], ");") + i
	create := strings.ReplaceAll(strings.Replace(ddl[i:j+1], "CREATE TABLE ops", "CREATE TABLE IF NOT EXISTS bare_ops", 1), "BLOB", blob)
	if _, err := s.db.ExecContext(ctx, create); err != nil {
		return nil, err
	}
	tmpl := strings.Replace(iOps, "INSERT INTO ops", "INSERT INTO bare_ops", 1)
	return func(args []any) error {
		return s.inTx(ctx, func(tx *dbtx) error { return tx.insert(ctx, tmpl, 20, args) })
	}, nil
}

// MigrateTo creates, or brings up to version, the schema of the ledger at
// dsn with only the first version migrations, as an older release did.
func MigrateTo(ctx context.Context, dsn string, version int) error {
	s, err := open(ctx, dsn, Options{}, version)
	if err != nil {
		return err
	}
	return s.Close()
}

// Migrations is how many migrations Open applies to a new database.
var Migrations = len(migrations)

// MigrationOf returns the version of the first migration whose text holds
// s, 0 for none.
func MigrationOf(s string) int {
	for i, m := range migrations {
		if strings.Contains(m, s) {
			return i + 1
		}
	}
	return 0
}

// PlanStoreCards returns the plan of the query that lists a page of a
// store's cards, a line per step: SQLite's EXPLAIN QUERY PLAN, or
// PostgreSQL's EXPLAIN ANALYZE (run, with the rows each step read).
func (s *Store) PlanStoreCards(ctx context.Context, store string, after loyalty.CardHash, limit int) ([]string, error) {
	return s.explain(ctx, s.rdb, "ANALYZE, COSTS OFF, TIMING OFF", s.q(qStoreCards), store, after[:], int64(limit))
}

// PlanLotReads returns the plans of the reads of lots by owner a batch
// makes for owners (the open lots, the invariant check's lot sums, the
// snapshot's expiring points before the Unix microsecond before) and of a
// link's move of the first owner's held lots, keyed "open lots", "lot
// sums", "expiring" and "link": SQLite's EXPLAIN QUERY PLAN, or
// PostgreSQL's EXPLAIN ANALYZE (run, with times; the link's in a
// transaction rolled back).
func (s *Store) PlanLotReads(ctx context.Context, owners []string, before int64) (map[string][]string, error) {
	nos, err := s.ownerNumbers(ctx, owners)
	if err != nil {
		return nil, err
	}
	in := make([]any, len(nos))
	for i, no := range nos {
		in[i] = no
	}
	plans := map[string][]string{}
	for name, read := range map[string]struct {
		tmpl  string
		extra []any
	}{
		"open lots": {qOpenLots, nil},
		"lot sums":  {qLotSums, nil},
		"expiring":  {qExpiring, []any{before}},
	} {
		q, args := s.expand(read.tmpl, 0, len(in)), append(append([]any{}, in...), read.extra...)
		if s.dialect == Postgres {
			q = s.q(pgInList(read.tmpl, "int8"))
			args = append([]any{nos}, read.extra...)
		}
		plan, err := s.explain(ctx, s.rdb, "ANALYZE, BUFFERS", q, args...)
		if err != nil {
			return nil, fmt.Errorf("plan of %s: %w", name, err)
		}
		plans[name] = plan
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	plan, err := s.explain(ctx, tx, "ANALYZE, BUFFERS", s.q(uMoveLots), int64(1<<40), nos[0])
	if err != nil {
		return nil, fmt.Errorf("plan of link: %w", err)
	}
	plans["link"] = plan
	return plans, nil
}

// ownerNumbers returns the numbers of owners, in their order.
func (s *Store) ownerNumbers(ctx context.Context, owners []string) ([]int64, error) {
	nos := make([]int64, len(owners))
	for i, o := range owners {
		if err := s.rdb.QueryRowContext(ctx, s.q(`SELECT no FROM owners WHERE id = ?`), o).Scan(&nos[i]); err != nil {
			return nil, fmt.Errorf("number of owner %s: %w", o, err)
		}
	}
	return nos, nil
}

// explain returns the plan of q a line per step: SQLite's EXPLAIN QUERY
// PLAN, or PostgreSQL's EXPLAIN with the options pg.
func (s *Store) explain(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, pg, q string, args ...any) ([]string, error) {
	explain := "EXPLAIN QUERY PLAN "
	if s.dialect == Postgres {
		explain = "EXPLAIN (" + pg + ") "
	}
	rows, err := db.QueryContext(ctx, explain+q, args...)
	if err != nil {
		return nil, err
	}
	cols, _ := rows.Columns()
	var plan []string
	err = scanAll(rows, func(rows *sql.Rows) error {
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(any)
		}
		if err := rows.Scan(vals...); err != nil {
			return err
		}
		line := *vals[len(vals)-1].(*any)
		if b, ok := line.([]byte); ok {
			line = string(b)
		}
		plan = append(plan, fmt.Sprint(line))
		return nil
	})
	return plan, err
}

// Rebind returns query with the placeholders of the store's dialect.
func (s *Store) Rebind(query string) string { return s.q(query) }

// CandidateNumber is the first number a new owner is offered.
var CandidateNumber = ownerNumber

// NumberOf returns the number of an owner.
func (s *Store) NumberOf(ctx context.Context, owner cloud.Owner) (int64, error) {
	nos, err := s.ownerNumbers(ctx, []string{string(owner)})
	if err != nil {
		return 0, err
	}
	return nos[0], nil
}

// CopyRows inserts rows into table by COPY, in a write transaction of its
// own (retried as Apply's are), the way Apply's larger inserts go on
// PostgreSQL.
func (s *Store) CopyRows(ctx context.Context, table string, columns []string, rows [][]any) error {
	var args []any
	for _, r := range rows {
		args = append(args, r...)
	}
	return s.inTx(ctx, func(tx *dbtx) error { return tx.copyRows(ctx, table, columns, len(columns), args) })
}

// ExecInTx runs statement in a ledger transaction.
func (s *Store) ExecInTx(ctx context.Context, statement string) error {
	return s.inTx(ctx, func(tx *dbtx) error {
		_, err := tx.ExecContext(ctx, statement)
		return err
	})
}

// WritersLock reports whether the ledger's transactions take the
// writers' lock (see inTx).
func (s *Store) WritersLock() bool { return s.writersLock }

// RunAloneFor has every transaction run alone for d, as after a conflict.
func (s *Store) RunAloneFor(d time.Duration) { s.runAlone(d) }

// ExpireChunk is how many lots one expiry transaction lapses.
const ExpireChunk = expireChunk

// TakeExpiryLease takes the lease an expiry run holds, for holder: a run
// in progress in another process.
func (s *Store) TakeExpiryLease(ctx context.Context, holder string) (bool, error) {
	return s.takeLease(ctx, expiryLease, holder)
}

// AgeExpiryLease moves the expiry lease's end d into the past, as if its
// holder had stopped renewing it d ago.
func (s *Store) AgeExpiryLease(ctx context.Context, d time.Duration) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE leases SET expires = expires - ? WHERE name = ?`), d.Microseconds(), expiryLease)
	return err
}

// AfterExpireChunk has fn run after each expiry chunk commits.
func (s *Store) AfterExpireChunk(fn func()) { s.afterExpireChunk = fn }

// SetBusyTimeout sets how long a SQLite ledger's writer waits for another
// process's write lock (10 s as opened).
func (s *Store) SetBusyTimeout(ctx context.Context, d time.Duration) error {
	_, err := s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", d.Milliseconds()))
	return err
}
