package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Statements are built from templates in a fixed set of sizes, so that
// their texts repeat: on SQLite each text is prepared once and reused
// (parsing a multi-row statement is a good part of its cost), and pgx's
// per-connection statement cache hits instead of preparing every new text.
// In a template, "(?*)" stands for an IN list (padded with copies of its
// last value up to the next size; a query may name the same list more
// than once) or for the row groups of a multi-row insert (split into
// chunks of the sizes).
//
// SQLite has a single writer connection, which a transaction holds, so a
// statement cannot be prepared on the database while one runs: a
// transaction runs a text it finds unprepared directly, notes it, and the
// notes are prepared once the transaction has ended.

// maxIn is the longest IN list on SQLite; callers chunk longer lists.
const maxIn = 512

// maxArray is the longest array parameter on PostgreSQL: much larger,
// since every query costs a round trip, which under load costs more than
// the query.
const maxArray = 16384

// inMax returns how many values one IN list (or array) may hold.
func (s *Store) inMax() int {
	if s.dialect == Postgres {
		return maxArray
	}
	return maxIn
}

// maxRows is the largest multi-row insert chunk.
const maxRows = 256

type stmtKey struct {
	tmpl string
	n    int // IN list length or rows; 0 for a fixed statement
}

// IN-list templates. Those that read lots by owner number name "remaining
// <> 0" (or heldLots) so that the partial index lots_by_owner_no serves
// them, and never "remaining > 0", the condition of lots_expiring, which
// only Expire names: with it PostgreSQL preferred reading every open lot
// by expiry.
const (
	// qSeenOps reads the applied and the refused ops among some IDs in one
	// statement: a union of two parts, each naming the condition of its
	// partial index (ops_applied_id, ops_rejected_id), so that each
	// searches its index on both databases.
	qSeenOps = `SELECT id, status, reason, kind, card, owner, posted, store, digest FROM ops WHERE status = 1 AND id IN (?*)
		UNION ALL SELECT id, status, reason, kind, card, owner, posted, store, digest FROM ops WHERE status = 3 AND id IN (?*)`
	qReversed = `SELECT target FROM reversals WHERE target IN (?*)`
	qCards    = `SELECT hash, member FROM cards WHERE hash IN (?*)`
	qSeenAt   = `SELECT card FROM card_stores WHERE card IN (?*) AND store = ?`
	qOwners   = `SELECT id, qualifying, last_overspend, avail, debt, no FROM owners WHERE id IN (?*)`
	// qOpenLots reads only what lots_by_owner_no holds (its columns and
	// the key, id), so that no lot's row is looked up: lots read in brief.
	qOpenLots = `SELECT id, owner_no, expires_at, remaining FROM lots WHERE owner_no IN (?*) AND remaining <> 0`
	// The invariant check reads each owner's balances and the sum and
	// least of its open lots (and their soonest expiry, which spares the
	// snapshots the read of expiring points of most owners), both after
	// the writes: two statements that each use an index (a join of the
	// two made PostgreSQL hash-join a scan of every lot, and a LATERAL
	// form was 17% slower there: docs/benchmarks.md, seventh session).
	qBalances  = `SELECT id, avail, debt, no FROM owners WHERE id IN (?*)`
	qLotSums   = `SELECT owner_no, COALESCE(CAST(SUM(remaining) AS BIGINT), 0), COALESCE(MIN(remaining), 0), MIN(expires_at) FROM lots WHERE owner_no IN (?*) AND remaining <> 0 GROUP BY owner_no`
	qExpiring  = `SELECT owner_no, expires_at, CAST(SUM(remaining) AS BIGINT) FROM lots WHERE owner_no IN (?*) AND remaining <> 0 AND expires_at < ? GROUP BY owner_no, expires_at ORDER BY owner_no, expires_at`
	inTemplate = "(?*)"
)

// Insert templates and their column counts.
const (
	iOps = `INSERT INTO ops (terminal, epoch, seq, id, status, reason, kind, store, card, owner, points, posted,
		rules_version, reverses, flags, wall_time, hlc, received_at, digest, body) VALUES (?*)`
	iPostings = `INSERT INTO postings (txid, part, account, amount, kind, at) VALUES (?*)`
	// Balances: PostgreSQL upserts them (iAccounts); SQLite, where an
	// upsert's DO UPDATE keeps a statement journal, updates those that
	// exist (uAccounts) and inserts the others (iNewAccounts).
	iAccounts    = `INSERT INTO accounts (id, balance) VALUES (?*) ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + excluded.balance`
	uAccounts    = `UPDATE accounts SET balance = accounts.balance + v.column2 FROM (VALUES (?*)) AS v WHERE accounts.id = v.column1 RETURNING id`
	iNewAccounts = `INSERT INTO accounts (id, balance) VALUES (?*)`
	iLots        = `INSERT INTO lots (id, owner_no, amount, remaining, earned_at, expires_at, rules_version, store) VALUES (?*)`
	// uLots sets the remaining points of lots (id, remaining): an update,
	// not an upsert, because SQLite keeps a statement journal for every
	// upsert that updates (see expand). A lot changes owner only when a
	// link moves all of a held card's lots (uMoveLots).
	uLots     = `UPDATE lots SET remaining = v.column2 FROM (VALUES (?*)) AS v WHERE lots.id = v.column1`
	uMoveLots = `UPDATE lots SET owner_no = ? WHERE owner_no = ? AND ` + heldLots
	iLotUses  = `INSERT INTO lot_uses (txid, part, lot, amount) VALUES (?*)`
	// An owner's row (a new one with its number): tier points and last
	// overspend are set, the two balances moved by the batch's postings
	// (id, qualifying, last overspend, available delta, debt delta);
	// uOwnerBalances only moves the balances (id, available delta, debt
	// delta).
	iOwners        = `INSERT INTO owners (id, qualifying, last_overspend, avail, debt, created_at, no) VALUES (?*)`
	uOwners        = `UPDATE owners SET qualifying = v.column2, last_overspend = v.column3, avail = owners.avail + v.column4, debt = owners.debt + v.column5 FROM (VALUES (?*)) AS v WHERE owners.id = v.column1`
	uOwnerBalances = `UPDATE owners SET avail = owners.avail + v.column2, debt = owners.debt + v.column3 FROM (VALUES (?*)) AS v WHERE owners.id = v.column1`
	iCards         = `INSERT INTO cards (hash, member, created_at) VALUES (?*)`
	uCards         = `UPDATE cards SET member = v.column2 FROM (VALUES (?*)) AS v WHERE cards.hash = v.column1`
	iCardStores    = `INSERT INTO card_stores (store, card) VALUES (?*) ON CONFLICT (store, card) DO NOTHING`
	iOverspends    = `INSERT INTO overspends (op_id, owner, store, terminal, shortfall, offline, at) VALUES (?*)`
	iReversals     = `INSERT INTO reversals (target, by_op) VALUES (?*)`
)

// Fixed statements run on every batch.
const (
	qRulesVersion = `SELECT COALESCE(MAX(version), 0) FROM rules`
	// qLapsedUntil is how far point expiry has run: the time of the
	// latest expiry run's postings (kindExpire), read from the index
	// postings_expired_at.
	qLapsedUntil   = `SELECT COALESCE(MAX(at), 0) FROM postings WHERE kind = 7`
	qTerminalState = `SELECT t.store, t.status, t.key_id, e.epoch, e.watermark, e.last_hash, (` + qRulesVersion + `), (` + qLapsedUntil + `)
		FROM terminals t LEFT JOIN epochs e ON e.terminal = t.id WHERE t.id = ?`
	qLotAmount = `SELECT amount FROM lots WHERE id = ?`
	iEpoch     = `INSERT INTO epochs (terminal, epoch, watermark, last_hash) VALUES (?, ?, ?, ?)
		ON CONFLICT (terminal, epoch) DO UPDATE SET watermark = excluded.watermark, last_hash = excluded.last_hash`
	iBatch = `INSERT INTO batches (terminal, epoch, first_seq, last_seq, hash, prev_hash, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`
)

// expand returns the text of a template for n values (ncol 0) or n rows
// of ncol columns.
//
// On SQLite a write resolves a conflict by ROLLBACK (of the whole
// transaction, which every ledger error rolls back anyway) instead of the
// default ABORT (of the statement alone), so that SQLite need not copy
// every page a multi-row write touches into a statement journal first:
// for writes spread over an index by owner that copy cost as much as the
// write. (An upsert's DO UPDATE still aborts, and so still journals.)
func (s *Store) expand(tmpl string, ncol, n int) string {
	if s.dialect == SQLite {
		tmpl = onConflictRollback(tmpl)
	}
	if ncol == 0 {
		return s.q(strings.ReplaceAll(tmpl, inTemplate, "("+inList(n)+")"))
	}
	group := "(" + strings.Repeat("?,", ncol-1) + "?)"
	return s.q(strings.Replace(tmpl, inTemplate, strings.Repeat(group+",", n-1)+group, 1))
}

// onConflictRollback makes a SQLite write's conflict resolution ROLLBACK.
func onConflictRollback(tmpl string) string {
	for _, verb := range []string{"INSERT", "UPDATE"} {
		if rest, ok := strings.CutPrefix(tmpl, verb+" "); ok {
			return verb + " OR ROLLBACK " + rest
		}
	}
	return tmpl
}

// stmtCache holds the statements prepared on one SQLite database handle.
type stmtCache struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[stmtKey]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache { return &stmtCache{db: db, m: map[stmtKey]*sql.Stmt{}} }

func (c *stmtCache) get(key stmtKey) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[key]
}

// prepare prepares the statements a transaction found missing. A failure
// only means the text keeps being parsed on each use.
func (c *stmtCache) prepare(ctx context.Context, missing map[stmtKey]string) {
	for key, text := range missing {
		if c.get(key) != nil {
			continue
		}
		st, err := c.db.PrepareContext(ctx, text)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.m[key] == nil {
			c.m[key] = st
		} else {
			st.Close()
		}
		c.mu.Unlock()
	}
}

// dbtx is a transaction with the prepared statements of its database.
type dbtx struct {
	*sql.Tx
	s       *Store
	cache   *stmtCache // nil on PostgreSQL
	conn    *sql.Conn  // PostgreSQL: the transaction's connection
	missing map[stmtKey]string
	// pending are PostgreSQL writes queued to go to the server as one
	// statement (data-modifying CTEs): one round trip instead of a dozen.
	// Every read flushes them first.
	pending []pendingWrite
}

type pendingWrite struct {
	text string // with ? placeholders
	args []any
}

// write runs a fixed write statement, or on PostgreSQL queues it.
func (t *dbtx) write(ctx context.Context, text string, args ...any) error {
	if t.s.dialect == Postgres {
		t.pending = append(t.pending, pendingWrite{text, args})
		return nil
	}
	_, err := t.exec(ctx, text, args...)
	return err
}

// flush sends the queued PostgreSQL writes as one statement: all but the
// last become data-modifying CTEs of the last.
func (t *dbtx) flush(ctx context.Context) error {
	return t.flushReturning(ctx, nil)
}

// flushReturning is flush, handing the rows the last write returns to scan.
func (t *dbtx) flushReturning(ctx context.Context, scan func(*sql.Rows) error) error {
	if len(t.pending) == 0 {
		return nil
	}
	var b strings.Builder
	var args []any
	last := len(t.pending) - 1
	for i, w := range t.pending[:last] {
		if i == 0 {
			b.WriteString("WITH ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "w%d AS (%s)", i, w.text)
		args = append(args, w.args...)
	}
	if last > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(t.pending[last].text)
	args = append(args, t.pending[last].args...)
	t.pending = nil
	if scan == nil {
		if _, err := t.ExecContext(ctx, t.s.q(b.String()), args...); err != nil {
			return fmt.Errorf("write the ledger: %w", err)
		}
		return nil
	}
	rs, err := t.QueryContext(ctx, t.s.q(b.String()), args...)
	if err == nil {
		err = scanAll(rs, scan)
	}
	if err != nil {
		return fmt.Errorf("write the ledger: %w", err)
	}
	return nil
}

// stmt returns the prepared statement for key within the transaction, or
// nil after noting that text should be prepared.
func (t *dbtx) stmt(ctx context.Context, key stmtKey, text func() string) (*sql.Stmt, string) {
	if t.cache == nil {
		return nil, text()
	}
	if st := t.cache.get(key); st != nil {
		return t.StmtContext(ctx, st), ""
	}
	q := text()
	if t.missing == nil {
		t.missing = map[stmtKey]string{}
	}
	t.missing[key] = q
	return nil, q
}

// prepareMissing prepares what the ended transaction found unprepared.
func (t *dbtx) prepareMissing(ctx context.Context) {
	if t.cache != nil && len(t.missing) > 0 {
		t.cache.prepare(context.WithoutCancel(ctx), t.missing)
	}
}

// end rolls a read transaction back and prepares what it missed.
func (t *dbtx) end(ctx context.Context) {
	t.Rollback()
	t.prepareMissing(ctx)
}

// queryIn runs an IN-list template with the values in (at most maxIn)
// for each of its lists, followed by the arguments extra. On PostgreSQL a
// list is one array parameter (= ANY($1::type[])).
func (t *dbtx) queryIn(ctx context.Context, tmpl string, in []any, extra ...any) (*sql.Rows, error) {
	if len(in) == 0 || len(in) > t.s.inMax() {
		return nil, fmt.Errorf("query with %d IN values, want 1 to %d", len(in), t.s.inMax())
	}
	lists := strings.Count(tmpl, inTemplate)
	if t.s.dialect == Postgres {
		if err := t.flush(ctx); err != nil {
			return nil, err
		}
		arr, typ, err := pgArray(in, 0, 1)
		if err != nil {
			return nil, err
		}
		args := make([]any, 0, lists+len(extra))
		for range lists {
			args = append(args, arr)
		}
		return t.QueryContext(ctx, t.s.q(pgInList(tmpl, typ)), append(args, extra...)...)
	}
	n := 1
	for n < len(in) {
		n *= 2
	}
	args := make([]any, 0, lists*n+len(extra))
	for range lists {
		args = append(args, in...)
		for range n - len(in) {
			args = append(args, in[len(in)-1])
		}
	}
	args = append(args, extra...)
	st, q := t.stmt(ctx, stmtKey{tmpl, n}, func() string { return t.s.expand(tmpl, 0, n) })
	if st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.QueryContext(ctx, q, args...)
}

// pgInList turns an IN-list template into PostgreSQL's form: each list is
// one array parameter of element type typ.
func pgInList(tmpl, typ string) string {
	return strings.ReplaceAll(tmpl, "IN "+inTemplate, "= ANY(?::"+typ+"[])")
}

// insert runs a write template over args, ncol values per row, in chunks
// of the fixed sizes; on PostgreSQL in one statement that unnests one array
// parameter per column, named as VALUES names its columns (column1, ...),
// so that a template can use the rows as a table on both dialects.
func (t *dbtx) insert(ctx context.Context, tmpl string, ncol int, args []any) error {
	return t.writeRows(ctx, tmpl, ncol, args, nil)
}

// insertReturning is insert for a template with a RETURNING clause: scan
// is called for each returned row. On PostgreSQL the statement goes to the
// server at once, as the last of the queued writes.
func (t *dbtx) insertReturning(ctx context.Context, tmpl string, ncol int, args []any, scan func(*sql.Rows) error) error {
	return t.writeRows(ctx, tmpl, ncol, args, scan)
}

func (t *dbtx) writeRows(ctx context.Context, tmpl string, ncol int, args []any, scan func(*sql.Rows) error) error {
	if len(args)%ncol != 0 {
		return fmt.Errorf("insert: %d values for %d columns", len(args), ncol)
	}
	if len(args) == 0 {
		return nil
	}
	if t.s.dialect == Postgres {
		if table, columns, ok := copyTarget(tmpl); ok && scan == nil && len(args)/ncol >= minCopyRows {
			return t.copyRows(ctx, table, columns, ncol, args)
		}
		cols := make([]any, ncol)
		casts := make([]string, ncol)
		names := make([]string, ncol)
		for c := range cols {
			arr, typ, err := pgArray(args, c, ncol)
			if err != nil {
				return err
			}
			cols[c], casts[c], names[c] = arr, "?::"+typ+"[]", "column"+strconv.Itoa(c+1)
		}
		q := strings.Replace(tmpl, "VALUES "+inTemplate,
			"SELECT * FROM unnest("+strings.Join(casts, ", ")+") AS u("+strings.Join(names, ", ")+")", 1)
		t.pending = append(t.pending, pendingWrite{q, cols})
		if scan != nil {
			return t.flushReturning(ctx, scan)
		}
		return nil
	}
	for rows := len(args) / ncol; rows > 0; {
		n := maxRows
		for n > rows {
			n /= 2
		}
		st, q := t.stmt(ctx, stmtKey{tmpl, n}, func() string { return t.s.expand(tmpl, ncol, n) })
		var err error
		switch {
		case scan != nil:
			var rs *sql.Rows
			if st != nil {
				rs, err = st.QueryContext(ctx, args[:n*ncol]...)
			} else {
				rs, err = t.QueryContext(ctx, q, args[:n*ncol]...)
			}
			if err == nil {
				err = scanAll(rs, scan)
			}
		case st != nil:
			_, err = st.ExecContext(ctx, args[:n*ncol]...)
		default:
			_, err = t.ExecContext(ctx, q, args[:n*ncol]...)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", tableOf(tmpl), err)
		}
		args, rows = args[n*ncol:], rows-n
	}
	return nil
}

// minCopyRows is the fewest rows a plain insert sends to PostgreSQL by
// COPY. COPY costs a round trip of its own, where a queued insert rides
// with the transaction's other writes; for a thousand rows it costs a
// third less time on the server than an insert from unnested arrays.
const minCopyRows = 64

// copyTarget returns the table and columns of a plain insert template
// ("INSERT INTO t (a, b) VALUES (?*)": no conflict clause, nothing
// returned), which PostgreSQL can take by COPY.
func copyTarget(tmpl string) (table string, columns []string, ok bool) {
	rest, ok := strings.CutPrefix(tmpl, "INSERT INTO ")
	if !ok {
		return "", nil, false
	}
	head, ok := strings.CutSuffix(rest, ") VALUES "+inTemplate)
	if !ok {
		return "", nil, false
	}
	table, list, ok := strings.Cut(head, " (")
	if !ok {
		return "", nil, false
	}
	for _, c := range strings.Split(list, ",") {
		columns = append(columns, strings.TrimSpace(c))
	}
	return table, columns, true
}

// copyRows inserts args, ncol values per row, into table by COPY, on the
// transaction's connection, after the writes queued before them.
func (t *dbtx) copyRows(ctx context.Context, table string, columns []string, ncol int, args []any) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	err := t.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("COPY needs a pgx connection, not %T", dc)
		}
		rows := len(args) / ncol
		_, err := c.Conn().CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromSlice(rows, func(i int) ([]any, error) {
			return args[i*ncol : (i+1)*ncol], nil
		}))
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", table, err)
	}
	return nil
}

// scanAll calls scan for each row of rs and closes it.
func scanAll(rs *sql.Rows, scan func(*sql.Rows) error) error {
	defer rs.Close()
	for rs.Next() {
		if err := scan(rs); err != nil {
			return err
		}
	}
	return rs.Err()
}

// tableOf names the table a write template writes.
func tableOf(tmpl string) string {
	f := strings.Fields(tmpl)
	if f[0] == "INSERT" && len(f) > 2 {
		return f[2]
	}
	return f[1]
}

// exec runs a fixed statement.
func (t *dbtx) exec(ctx context.Context, text string, args ...any) (sql.Result, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	st, q := t.stmt(ctx, stmtKey{text, 0}, func() string { return t.s.q(text) })
	if st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.ExecContext(ctx, q, args...)
}

// query runs a fixed query.
func (t *dbtx) query(ctx context.Context, text string, args ...any) (*sql.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	st, q := t.stmt(ctx, stmtKey{text, 0}, func() string { return t.s.q(text) })
	if st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.QueryContext(ctx, q, args...)
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
