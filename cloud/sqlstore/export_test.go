package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tillpoint/tillpoint/loyalty"
)

// BareInserter returns a function that stores rows of the ops table's
// shape in a table of the same shape without any ledger logic: one
// transaction per call, through the same multi-row statements (prepared
// the same way, on first use) that Apply uses. It is the baseline of the ingest benchmarks.
func (s *Store) BareInserter(ctx context.Context) (func(args []any) error, error) {
	blob := "BLOB"
	if s.dialect == Postgres {
		blob = "BYTEA"
	}
	ddl := migrations[0]
	i := strings.Index(ddl, "CREATE TABLE ops (")
	j := strings.Index(ddl[i:], ");") + i
	create := strings.ReplaceAll(strings.Replace(ddl[i:j+1], "CREATE TABLE ops", "CREATE TABLE bare_ops", 1), "BLOB", blob)
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

// PlanStoreCards returns the plan of the query that lists a page of a
// store's cards, a line per step: SQLite's EXPLAIN QUERY PLAN, or
// PostgreSQL's EXPLAIN ANALYZE (run, with the rows each step read).
func (s *Store) PlanStoreCards(ctx context.Context, store string, after loyalty.CardHash, limit int) ([]string, error) {
	explain := "EXPLAIN QUERY PLAN "
	if s.dialect == Postgres {
		explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
	}
	rows, err := s.rdb.QueryContext(ctx, explain+s.q(qStoreCards), store, after[:], int64(limit))
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
