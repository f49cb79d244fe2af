package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Statements are built from templates in a fixed set of sizes, so that
// their texts repeat: SQLite statements are prepared once at Open and
// reused (parsing a multi-row statement is a good part of its cost), and
// pgx's per-connection statement cache hits instead of preparing every
// new text. In a template, "(?*)" stands for an IN list (padded with
// copies of its last value up to the next size) or for the row groups of a
// multi-row insert (split into chunks of the sizes).

// maxIn is the longest IN list; callers chunk longer lists.
const maxIn = 512

// maxRows is the largest multi-row insert chunk.
const maxRows = 256

// sizes are the IN list and row chunk sizes: powers of two.
func sizes(limit int) []int {
	var out []int
	for n := 1; n <= limit; n *= 2 {
		out = append(out, n)
	}
	return out
}

type stmtKey struct {
	tmpl string
	n    int // IN list length or rows; 0 for a fixed statement
}

// IN-list templates.
const (
	qApplied   = `SELECT id, kind, card, owner, posted, store, digest FROM ops WHERE status = 1 AND id IN (?*)`
	qReversed  = `SELECT target FROM reversals WHERE target IN (?*)`
	qCards     = `SELECT hash, member FROM cards WHERE hash IN (?*)`
	qOwners    = `SELECT id, qualifying, last_overspend FROM owners WHERE id IN (?*)`
	qAccounts  = `SELECT id, balance FROM accounts WHERE id IN (?*)`
	qOpenLots  = `SELECT ` + lotColumns + ` FROM lots WHERE owner IN (?*) AND remaining > 0`
	qLotSums   = `SELECT owner, COALESCE(CAST(SUM(remaining) AS BIGINT), 0), COALESCE(MIN(remaining), 0) FROM lots WHERE owner IN (?*) AND remaining <> 0 GROUP BY owner`
	qExpiring  = `SELECT owner, expires_at, remaining FROM lots WHERE owner IN (?*) AND remaining <> 0 AND expires_at < ? ORDER BY owner, expires_at`
	inTemplate = "(?*)"
)

// Insert templates and their column counts.
const (
	iOps = `INSERT INTO ops (terminal, epoch, seq, id, status, reason, kind, store, card, owner, points, posted,
		rules_version, reverses, flags, wall_time, hlc, received_at, digest, body) VALUES (?*)`
	iPostings   = `INSERT INTO postings (txid, part, account, amount, kind, at) VALUES (?*)`
	iAccounts   = `INSERT INTO accounts (id, balance) VALUES (?*) ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + excluded.balance`
	iLots       = `INSERT INTO lots (` + lotColumns + `) VALUES (?*) ON CONFLICT (id) DO UPDATE SET remaining = excluded.remaining, owner = excluded.owner`
	iLotUses    = `INSERT INTO lot_uses (txid, part, lot, amount) VALUES (?*)`
	iOwners     = `INSERT INTO owners (id, qualifying, last_overspend, created_at) VALUES (?*) ON CONFLICT (id) DO UPDATE SET qualifying = excluded.qualifying, last_overspend = excluded.last_overspend`
	iCards      = `INSERT INTO cards (hash, member, created_at) VALUES (?*) ON CONFLICT (hash) DO UPDATE SET member = excluded.member`
	iCardStores = `INSERT INTO card_stores (store, card) VALUES (?*) ON CONFLICT (store, card) DO NOTHING`
	iOverspends = `INSERT INTO overspends (op_id, owner, store, terminal, shortfall, offline, at) VALUES (?*)`
	iReversals  = `INSERT INTO reversals (target, by_op) VALUES (?*)`
)

func inTemplates() []string {
	return []string{qApplied, qReversed, qCards, qOwners, qAccounts, qOpenLots, qLotSums, qExpiring}
}

func insertTemplates() map[string]int {
	return map[string]int{iOps: 20, iPostings: 6, iAccounts: 2, iLots: 8, iLotUses: 4, iOwners: 4, iCards: 3,
		iCardStores: 2, iOverspends: 7, iReversals: 2}
}

// Fixed statements run on every batch.
const (
	qTerminal     = `SELECT store, status FROM terminals WHERE id = ?`
	qEpochs       = `SELECT epoch, watermark, last_hash FROM epochs WHERE terminal = ?`
	qRulesVersion = `SELECT COALESCE(MAX(version), 0) FROM rules`
	iEpoch        = `INSERT INTO epochs (terminal, epoch, watermark, last_hash) VALUES (?, ?, ?, ?)
		ON CONFLICT (terminal, epoch) DO UPDATE SET watermark = excluded.watermark, last_hash = excluded.last_hash`
	iBatch = `INSERT INTO batches (terminal, epoch, first_seq, last_seq, hash, prev_hash, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`
)

func fixedStatements() []string { return []string{qTerminal, qEpochs, qRulesVersion, iEpoch, iBatch} }

// expand returns the text of a template for n values (ncol 0) or n rows of ncol columns.
func (s *Store) expand(tmpl string, ncol, n int) string {
	var list string
	if ncol == 0 {
		list = "(" + inList(n) + ")"
	} else {
		group := "(" + strings.Repeat("?,", ncol-1) + "?)"
		list = strings.Repeat(group+",", n-1) + group
	}
	return s.q(strings.Replace(tmpl, inTemplate, list, 1))
}

// prepare prepares every template in every size on db (SQLite only: pgx
// caches prepared statements by text on its own).
func (s *Store) prepare(ctx context.Context, db *sql.DB, writes bool) (map[stmtKey]*sql.Stmt, error) {
	m := map[stmtKey]*sql.Stmt{}
	add := func(key stmtKey, text string) error {
		st, err := db.PrepareContext(ctx, text)
		if err != nil {
			return fmt.Errorf("prepare %.60s: %w", text, err)
		}
		m[key] = st
		return nil
	}
	for _, t := range inTemplates() {
		for _, n := range sizes(maxIn) {
			if err := add(stmtKey{t, n}, s.expand(t, 0, n)); err != nil {
				return nil, err
			}
		}
	}
	for _, t := range fixedStatements() {
		if err := add(stmtKey{t, 0}, s.q(t)); err != nil {
			return nil, err
		}
	}
	if writes {
		for t, ncol := range insertTemplates() {
			for _, n := range sizes(maxRows) {
				if err := add(stmtKey{t, n}, s.expand(t, ncol, n)); err != nil {
					return nil, err
				}
			}
		}
	}
	return m, nil
}

// dbtx is a transaction with the prepared statements of its database.
type dbtx struct {
	*sql.Tx
	s     *Store
	stmts map[stmtKey]*sql.Stmt
}

func (t *dbtx) stmt(ctx context.Context, key stmtKey) *sql.Stmt {
	if st := t.stmts[key]; st != nil {
		return t.StmtContext(ctx, st)
	}
	return nil
}

// queryIn runs an IN-list template with the values in (at most maxIn),
// followed by the arguments extra. On PostgreSQL the list is one array
// parameter (= ANY($1::type[])).
func (t *dbtx) queryIn(ctx context.Context, tmpl string, in []any, extra ...any) (*sql.Rows, error) {
	if len(in) == 0 || len(in) > maxIn {
		return nil, fmt.Errorf("query with %d IN values, want 1 to %d", len(in), maxIn)
	}
	if t.s.dialect == Postgres {
		arr, typ, err := pgArray(in, 0, 1)
		if err != nil {
			return nil, err
		}
		q := strings.Replace(tmpl, "IN "+inTemplate, "= ANY(?::"+typ+"[])", 1)
		return t.QueryContext(ctx, t.s.q(q), append([]any{arr}, extra...)...)
	}
	n := 1
	for n < len(in) {
		n *= 2
	}
	args := make([]any, 0, n+len(extra))
	args = append(args, in...)
	for len(args) < n {
		args = append(args, in[len(in)-1])
	}
	args = append(args, extra...)
	if st := t.stmt(ctx, stmtKey{tmpl, n}); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.QueryContext(ctx, t.s.expand(tmpl, 0, n), args...)
}

// insert runs an insert template over args, ncol values per row, in chunks
// of the fixed sizes; on PostgreSQL in one statement that unnests one array
// parameter per column.
func (t *dbtx) insert(ctx context.Context, tmpl string, ncol int, args []any) error {
	if len(args)%ncol != 0 {
		return fmt.Errorf("insert: %d values for %d columns", len(args), ncol)
	}
	if len(args) == 0 {
		return nil
	}
	if t.s.dialect == Postgres {
		cols := make([]any, ncol)
		casts := make([]string, ncol)
		for c := range cols {
			arr, typ, err := pgArray(args, c, ncol)
			if err != nil {
				return err
			}
			cols[c], casts[c] = arr, "?::"+typ+"[]"
		}
		q := strings.Replace(tmpl, "VALUES "+inTemplate, "SELECT * FROM unnest("+strings.Join(casts, ", ")+")", 1)
		if _, err := t.ExecContext(ctx, t.s.q(q), cols...); err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(tmpl)[2], err)
		}
		return nil
	}
	for rows := len(args) / ncol; rows > 0; {
		n := maxRows
		for n > rows {
			n /= 2
		}
		var err error
		if st := t.stmt(ctx, stmtKey{tmpl, n}); st != nil {
			_, err = st.ExecContext(ctx, args[:n*ncol]...)
		} else {
			_, err = t.ExecContext(ctx, t.s.expand(tmpl, ncol, n), args[:n*ncol]...)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(tmpl)[2], err)
		}
		args, rows = args[n*ncol:], rows-n
	}
	return nil
}

// exec runs a fixed statement.
func (t *dbtx) exec(ctx context.Context, text string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, stmtKey{text, 0}); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.ExecContext(ctx, t.s.q(text), args...)
}

// query runs a fixed query.
func (t *dbtx) query(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, stmtKey{text, 0}); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.QueryContext(ctx, t.s.q(text), args...)
}

// queryRow runs a fixed single-row query.
func (t *dbtx) queryRow(ctx context.Context, text string, args ...any) *sql.Row {
	if st := t.stmt(ctx, stmtKey{text, 0}); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.QueryRowContext(ctx, t.s.q(text), args...)
}

// pgArray gathers every stride-th value of args from offset into a typed
// slice for a PostgreSQL array parameter, and names its element type.
func pgArray(args []any, offset, stride int) (any, string, error) {
	n := (len(args) - offset + stride - 1) / stride
	switch args[offset].(type) {
	case int64:
		out := make([]int64, 0, n)
		for i := offset; i < len(args); i += stride {
			out = append(out, args[i].(int64))
		}
		return out, "int8", nil
	case string:
		out := make([]string, 0, n)
		for i := offset; i < len(args); i += stride {
			out = append(out, args[i].(string))
		}
		return out, "text", nil
	case []byte:
		out := make([][]byte, 0, n)
		for i := offset; i < len(args); i += stride {
			out = append(out, args[i].([]byte))
		}
		return out, "bytea", nil
	}
	return nil, "", fmt.Errorf("array parameter of %T: only int64, string and []byte", args[offset])
}
