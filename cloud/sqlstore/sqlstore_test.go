package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
	"github.com/tillpoint/tillpoint/loyalty"
)

func TestLedgerSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cloud.Ledger { return storetest.OpenSQLite(t, sqlstore.Options{}) })
}

func TestLedgerPostgres(t *testing.T) {
	storetest.PostgresURL(t)
	storetest.Run(t, func(t *testing.T) cloud.Ledger { return storetest.OpenPostgres(t, sqlstore.Options{}) })
}

// TestLedgerPostgresBehindPgBouncer runs the whole suite through a real
// PgBouncer pooling by transaction over two server sessions, as many
// production deployments connect: every statement the ledger sends (COPY,
// the write statement of data-modifying CTEs, described statements, the
// writers' lock) must work when consecutive transactions, and statements
// outside one, land on different server sessions.
func TestLedgerPostgresBehindPgBouncer(t *testing.T) {
	storetest.PostgresURL(t)
	storetest.Run(t, func(t *testing.T) cloud.Ledger { return openBehindPgBouncer(t, 2) })
}

// openBehindPgBouncer opens a fresh PostgreSQL ledger behind a PgBouncer
// of its own, pooling by transaction over sessions server sessions. When
// the test ends the ledger is checked, then closed.
func openBehindPgBouncer(tb testing.TB, sessions int) *sqlstore.Store {
	tb.Helper()
	s, err := sqlstore.Open(context.Background(), storetest.PgBouncer(tb, storetest.PostgresSchema(tb), sessions), sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatalf("open the ledger behind PgBouncer: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	tb.Cleanup(func() { storetest.AssertConserved(tb, s) })
	return s
}

func TestReopenKeepsLedgerAndMigratesOnce(t *testing.T) {
	ctx := context.Background()
	path := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	s, err := sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatal(err)
	}
	tl := storetest.NewTill(t, s, "t1", "s1")
	tl.Send(t, s, tl.Earn(storetest.Card(1), 1000, 10))
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	s, err = sqlstore.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != sqlstore.Migrations {
		t.Errorf("migrations recorded: got %d, %v; want %d, each applied once", n, err, sqlstore.Migrations)
	}
	a := tl.Send(t, s, tl.Earn(storetest.Card(1), 500, 5))
	if a.Watermark != 2 || a.Snapshots[0].Balance != 15 {
		t.Errorf("after reopen: got watermark %d balance %d, want 2 and 15", a.Watermark, a.Snapshots[0].Balance)
	}
	storetest.AssertConserved(t, s)
}

func TestOpenErrorsSayWhatToFix(t *testing.T) {
	ctx := context.Background()
	if _, err := sqlstore.Open(ctx, "sqlite:", sqlstore.Options{}); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("empty sqlite path: got %v, want ErrInvalidInput", err)
	}
	_, err := sqlstore.Open(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", sqlstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "check --db") {
		t.Errorf("unreachable postgres: got %v, want an error telling to check --db", err)
	}
	dir := t.TempDir()
	if _, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "missing", "ledger.db"), sqlstore.Options{}); err == nil {
		t.Errorf("sqlite in a missing directory: got no error")
	}
}

// dialects open a fresh ledger of each kind, for tests of both; the
// PostgreSQL one skips when TILLPOINT_TEST_POSTGRES is unset.
// execRaw runs q on the store's database behind the ledger's back, with
// ? placeholders on both dialects.
func execRaw(t *testing.T, s *sqlstore.Store, q string, args ...any) {
	t.Helper()
	if _, err := s.DB().ExecContext(context.Background(), s.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

var dialects = map[string]func(testing.TB) *sqlstore.Store{
	"sqlite": func(tb testing.TB) *sqlstore.Store { return storetest.OpenSQLite(tb, sqlstore.Options{}) },
	"postgres": func(tb testing.TB) *sqlstore.Store {
		storetest.PostgresURL(tb)
		return storetest.OpenPostgres(tb, sqlstore.Options{})
	},
}

// TestSnapshotPageReadsOnlyItsRows defends GET /v1/snapshots against
// reading a whole store for every page: the page's card list must be a
// range of the (store, card) key with a LIMIT, never a scan or a sort of
// the store's cards. On PostgreSQL the plan runs and must read no more
// rows than the page.
func TestSnapshotPageReadsOnlyItsRows(t *testing.T) {
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			tl, other := storetest.NewTill(t, s, "t1", "s1"), storetest.NewTill(t, s, "t2", "s2")
			for first := 0; first < 2000; first += 500 {
				var ops, elsewhere []loyalty.Op
				for i := first; i < first+500; i++ {
					ops = append(ops, tl.Earn(storetest.Card(i), 1000, 10))
					elsewhere = append(elsewhere, other.Earn(storetest.Card(10000+i), 1000, 10))
				}
				tl.Send(t, s, ops...)
				other.Send(t, s, elsewhere...)
			}
			if s.Dialect() == sqlstore.Postgres {
				if _, err := s.DB().ExecContext(ctx, "ANALYZE card_stores"); err != nil {
					t.Fatal(err)
				}
			}
			const limit = 10
			page, err := s.Snapshots(ctx, "s1", storetest.Card(1000), limit, storetest.Start())
			if err != nil || len(page) != limit {
				t.Fatalf("page: got %d snapshots, %v; want %d", len(page), err, limit)
			}
			plan, err := s.PlanStoreCards(ctx, "s1", storetest.Card(1000), limit)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			text := strings.Join(plan, "\n")
			switch s.Dialect() {
			case sqlstore.SQLite:
				if len(plan) != 1 || !strings.Contains(text, "SEARCH card_stores USING PRIMARY KEY (store=? AND card>?)") {
					t.Errorf("plan of a page:\n%s\nwant one SEARCH of the primary key range (store=? AND card>?), no scan or sort", text)
				}
			case sqlstore.Postgres:
				if !strings.HasPrefix(plan[0], "Limit (actual rows=10") || strings.Contains(text, "Seq Scan") || strings.Contains(text, "Sort") ||
					!strings.Contains(text, "Index Only Scan using card_stores_pkey") || !strings.Contains(text, "(actual rows=10 loops=1)\n") {
					t.Errorf("plan of a page:\n%s\nwant a LIMIT over an index range of card_stores that reads 10 rows", text)
				}
			}
		})
	}
}

// TestCardOwnersSortBeforeMembers defends the lots index's condition
// (owner < 'm:' selects held cards' lots, which a link moves even when
// closed): every card owner must sort before "m:" and every member owner
// at or after it.
func TestCardOwnersSortBeforeMembers(t *testing.T) {
	for i := range 100 {
		if o := cloud.CardOwner(storetest.Card(i)); string(o) >= "m:" {
			t.Fatalf("card owner %q sorts at or after \"m:\"", o)
		}
	}
	for _, m := range []loyalty.MemberID{"", "0", "a", "member-1", "\x00", "zzz"} {
		if o := cloud.MemberOwner(m); string(o) < "m:" {
			t.Fatalf("member owner %q sorts before \"m:\"", o)
		}
	}
}

// TestOpenWarnsWhenPostgresRunsWithoutAutovacuum defends the operator's
// warning that the server's settings will slow the ledger down: Open logs
// it exactly when the server runs with autovacuum off.
func TestOpenWarnsWhenPostgresRunsWithoutAutovacuum(t *testing.T) {
	var log bytes.Buffer
	s, err := sqlstore.Open(context.Background(), storetest.PostgresSchema(t), sqlstore.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var autovacuum string
	if err := s.DB().QueryRow(`SHOW autovacuum`).Scan(&autovacuum); err != nil {
		t.Fatal(err)
	}
	warned := strings.Contains(log.String(), "autovacuum off")
	if warned != (autovacuum == "off") {
		t.Errorf("server autovacuum = %s, warned = %v; log:\n%s", autovacuum, warned, log.String())
	}
}

// TestLargeBatchesBookAlikeOnBothDatabases defends that the two stores
// are one ledger: the same batches, large enough that PostgreSQL takes
// their inserts by COPY rather than as statements, get the same acks
// (results, points, flags, snapshots) and leave ledgers that check to the
// same totals.
func TestLargeBatchesBookAlikeOnBothDatabases(t *testing.T) {
	storetest.PostgresURL(t)
	ctx := context.Background()
	lite, pg := storetest.OpenSQLite(t, sqlstore.Options{}), storetest.OpenPostgres(t, sqlstore.Options{})
	for _, s := range []*sqlstore.Store{lite, pg} {
		if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
			t.Fatal(err)
		}
	}
	w := newWorkload(storetest.NewTill(t, lite, "t1", "s1"), 3000)
	storetest.NewTill(t, pg, "t1", "s1") // the same terminal, enrolled on PostgreSQL
	for i := 0; i < 6; i++ {
		bt := w.next(400)
		want, err := lite.Apply(ctx, bt)
		if err != nil {
			t.Fatalf("SQLite: batch %d: %v", i, err)
		}
		bt.Ops = slices.Clone(bt.Ops)
		got, err := pg.Apply(ctx, bt)
		if err != nil {
			t.Fatalf("PostgreSQL: batch %d: %v", i, err)
		}
		for j := range want.Results {
			if got.Results[j] != want.Results[j] {
				t.Fatalf("batch %d op %d: PostgreSQL %+v, SQLite %+v", i, j, got.Results[j], want.Results[j])
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("batch %d: the acks differ beyond their results:\nPostgreSQL %+v\nSQLite     %+v", i, got, want)
		}
	}
	wantRep, err := lite.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gotRep, err := pg.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotRep, wantRep) {
		t.Errorf("checks differ:\nPostgreSQL %+v\nSQLite     %+v", gotRep, wantRep)
	}
}

// TestCopyConflictIsRetriedAndLeavesNothing defends the failure of an
// insert by COPY: a duplicate key comes back as PostgreSQL's unique
// violation, which the ledger's transactions retry (another transaction
// inserted the key first), it names the table, and none of the COPY's
// rows stay behind.
func TestCopyConflictIsRetriedAndLeavesNothing(t *testing.T) {
	storetest.PostgresURL(t)
	ctx := context.Background()
	s := storetest.OpenPostgres(t, sqlstore.Options{MaxRetries: 1})
	rows := func(first int) [][]any {
		var out [][]any
		for i := first; i < first+100; i++ {
			out = append(out, []any{[]byte(fmt.Sprintf("op-%04d", i)), []byte("card"), int64(i), int64(0)})
		}
		return out
	}
	cols := []string{"op_id", "card", "points", "at"}
	if err := s.CopyRows(ctx, "claims", cols, rows(0)); err != nil {
		t.Fatal(err)
	}
	err := s.CopyRows(ctx, "claims", cols, rows(50)) // 50 new keys, then 50 taken
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" || !strings.HasPrefix(err.Error(), "claims: ") {
		t.Fatalf("COPY over taken keys: %v; want claims: and a unique violation (23505)", err)
	}
	var n int
	if err := s.DB().QueryRow(`SELECT COUNT(*) FROM claims`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Errorf("claims holds %d rows after a failed COPY, want the first COPY's 100", n)
	}
}

// TestConflictingBatchesRunAtMostTwiceOnPostgres: four terminals of four
// stores send batches on the same few cards at once, so that their
// transactions write the same owners' rows and fail to serialize. A batch
// that failed runs again alone, so no batch is tried a third time, and none
// gives up after its retries are spent (which the code before this
// guarantee did on this workload: "could not serialize access" after 21
// attempts). The ledger is checked when the test ends.
func TestConflictingBatchesRunAtMostTwiceOnPostgres(t *testing.T) {
	ctx := context.Background()
	var log syncbuf.Buffer
	s := postgresWithRules(t, sqlstore.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	tills := make([]*storetest.Till, 4)
	for i := range tills {
		tills[i] = storetest.NewTill(t, s, fmt.Sprintf("t%d", i), fmt.Sprintf("s%d", i))
	}
	sendConflictingBatches(ctx, t, []*sqlstore.Store{s}, tills)
	st := s.Stats()
	t.Logf("%d of %d batches ran twice", st.Retried, len(tills)*conflictingBatches)
	if st.Rerun != 0 {
		t.Errorf("%d batches ran three times or more: a retry did not run alone", st.Rerun)
	}
	// The operator hears of the conflicts once, not once a batch.
	if n := strings.Count(log.String(), "conflicted with others and ran again alone"); st.Retried > 0 && n != 1 {
		t.Errorf("%d conflicts logged %d lines in a minute, want 1:\n%s", st.Retried, n, log.String())
	}
}

// conflictingBatches is how many batches each till of
// sendConflictingBatches sends.
const conflictingBatches = 5

// sendConflictingBatches has every till send conflictingBatches batches
// of 60 ops at once, till i to ledgers[i%len(ledgers)], all on the same 20
// cards, and fails t unless every op of every batch is applied.
func sendConflictingBatches(ctx context.Context, t *testing.T, ledgers []*sqlstore.Store, tills []*storetest.Till) {
	t.Helper()
	const size, cards = 60, 20
	start := make(chan struct{})
	errs := make(chan error, len(tills))
	applied := make(chan int, len(tills)*conflictingBatches)
	for i, tl := range tills {
		s := ledgers[i%len(ledgers)]
		go func() {
			<-start
			for b := range conflictingBatches {
				ops := make([]loyalty.Op, 0, size)
				for j := range size {
					c := storetest.Card((i + j*7 + b) % cards)
					if j%4 == 3 {
						ops = append(ops, tl.Redeem(c, 3, true))
					} else {
						ops = append(ops, tl.Earn(c, 200, 2))
					}
				}
				ack, err := s.Apply(ctx, tl.Seal(ops...))
				if err != nil {
					errs <- fmt.Errorf("terminal %s batch %d: %w", tl.ID, b, err)
					return
				}
				n := 0
				for _, r := range ack.Results {
					if r.Status == cloud.StatusApplied {
						n++
					}
				}
				applied <- n
			}
			errs <- nil
		}()
	}
	close(start)
	for range tills {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(applied)
	total := 0
	for n := range applied {
		total += n
	}
	if want := len(tills) * conflictingBatches * size; total != want {
		t.Errorf("%d ops applied, want every one of the %d sent", total, want)
	}
}

// TestWritersLockHoldsBehindPgBouncer: PgBouncer pooling by transaction
// hands each transaction to whichever server session is free. Two clouds
// behind one PgBouncer of three server sessions race conflicting batches,
// every transaction of the second running alone, as a retry does. Every
// batch applies and none runs a third time: the writers' lock held
// through the pooler. When they are done no session holds the lock, and
// a third cloud, connected directly, applies at once. With the session
// advisory lock used before, an exclusive lock stayed with whichever
// server session took it, and every other transaction waited for it
// until PgBouncer closed that session.
func TestWritersLockHoldsBehindPgBouncer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	direct := storetest.PostgresSchema(t)
	pooled := storetest.PgBouncer(t, direct, 3)
	var log syncbuf.Buffer
	open := func(url string) *sqlstore.Store {
		s, err := sqlstore.Open(ctx, url, sqlstore.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatalf("open the ledger at %s: %v", url, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	clouds := []*sqlstore.Store{open(pooled), open(pooled)}
	if !clouds[0].WritersLock() {
		t.Fatalf("no writers' lock behind PgBouncer; log:\n%s", log.String())
	}
	if err := clouds[0].PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatal(err)
	}
	tills := make([]*storetest.Till, 4)
	for i := range tills {
		tills[i] = storetest.NewTill(t, clouds[i%2], fmt.Sprintf("t%d", i), fmt.Sprintf("s%d", i))
	}
	clouds[1].RunAloneFor(time.Hour)
	sendConflictingBatches(ctx, t, clouds, tills)
	for i, s := range clouds {
		if st := s.Stats(); st.Rerun != 0 {
			t.Errorf("cloud %d: %d batches ran three times or more: a retry did not run alone", i, st.Rerun)
		}
	}
	// A batch large enough that its rows go to the server by COPY.
	var ops []loyalty.Op
	for i := range 300 {
		ops = append(ops, tills[0].Earn(storetest.Card(100+i), 500, 5))
	}
	if ack, err := clouds[0].Apply(ctx, tills[0].Seal(ops...)); err != nil || len(ack.Results) != len(ops) {
		t.Fatalf("a batch of %d ops behind PgBouncer: %d results, %v", len(ops), len(ack.Results), err)
	}

	d := open(direct)
	var held int
	if err := d.DB().QueryRowContext(ctx, writersLocks).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held != 0 {
		t.Errorf("%d sessions hold the writers' lock with no ledger transaction running", held)
	}
	tl := storetest.NewTill(t, d, "direct", "s-direct")
	if _, err := d.Apply(ctx, tl.Seal(tl.Earn(storetest.Card(1), 500, 5))); err != nil {
		t.Fatalf("a batch through a cloud connected directly, after the pooled clouds' batches: %v", err)
	}
	storetest.AssertConserved(t, d)
}

// TestCloudRunsAsARoleThatOnlyReadsAndWritesRows: a DBA migrates the
// ledger as its owner and runs the cloud as a role that may only read and
// write rows. Such a cloud opens a ledger that has every migration and
// applies batches; migrations behind, it says to run the cloud once as
// the owner; without the right to lock ledger_writers, it says what to
// grant.
func TestCloudRunsAsARoleThatOnlyReadsAndWritesRows(t *testing.T) {
	ctx := context.Background()
	owner := storetest.PostgresSchema(t)
	if err := sqlstore.MigrateTo(ctx, owner, sqlstore.MigrationOf("CREATE TABLE ledger_writers")-1); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(owner)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	role := schema + "_dml"
	admin, err := sql.Open("pgx", owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // after the role is dropped
	run := func(qs ...string) {
		t.Helper()
		for _, q := range qs {
			if _, err := admin.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	run(`CREATE ROLE `+role+` LOGIN`, `GRANT USAGE ON SCHEMA `+schema+` TO `+role,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA `+schema+` TO `+role)
	t.Cleanup(func() {
		for _, q := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := admin.ExecContext(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u.User = url.User(role)
	asRole := u.String()

	if _, err := sqlstore.Open(ctx, asRole, sqlstore.Options{}); err == nil || !strings.Contains(err.Error(), "run the cloud once as the ledger's owner") {
		t.Errorf("open a ledger a migration behind as a role that may not create tables: got %v, want an error saying to run the cloud as the owner once", err)
	}
	s, err := sqlstore.Open(ctx, owner, sqlstore.Options{}) // migrates
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// ledger_writers is newer than the grant on all tables.
	if _, err := sqlstore.Open(ctx, asRole, sqlstore.Options{}); err == nil || !strings.Contains(err.Error(), "granted UPDATE on ledger_writers") {
		t.Errorf("open as a role that may not lock ledger_writers: got %v, want an error saying to grant UPDATE on it", err)
	}
	run(`GRANT SELECT, UPDATE ON ` + schema + `.ledger_writers TO ` + role)
	dml, err := sqlstore.Open(ctx, asRole, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open a migrated ledger as a role that reads and writes rows: %v", err)
	}
	defer dml.Close()
	if !dml.WritersLock() {
		t.Error("no writers' lock for the role that may take it")
	}
	if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatal(err)
	}
	tl := storetest.NewTill(t, dml, "t1", "s1")
	if _, err := dml.Apply(ctx, tl.Seal(tl.Earn(storetest.Card(1), 500, 5), tl.Redeem(storetest.Card(1), 2, true))); err != nil {
		t.Fatalf("apply a batch as the role: %v", err)
	}
	storetest.AssertConserved(t, dml)
}

// writersLocks counts the sessions that hold or wait for the ledger's
// writers' lock: the lock on the table ledger_writers of the schema the
// connection reaches (other tests' ledgers have theirs).
const writersLocks = `SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND relation = 'ledger_writers'::regclass AND pid <> pg_backend_pid()`

// TestCancelledWaitForTheWritersLockLeavesNoLockBehind: a batch whose
// request ends while it waits behind a retry running alone gives up with
// an error that says what it waited for, and its wait ends with its
// transaction: the next batch goes through.
func TestCancelledWaitForTheWritersLockLeavesNoLockBehind(t *testing.T) {
	ctx := context.Background()
	s := postgresWithRules(t, sqlstore.Options{})
	tl := storetest.NewTill(t, s, "t1", "s1")
	holder := holdTableLock(t, s, "ledger_writers") // stands in for a retry running alone
	waiting, cancel := context.WithCancel(ctx)
	defer cancel()
	applied := make(chan error, 1)
	go func() {
		_, err := s.Apply(waiting, tl.Seal(tl.Earn(storetest.Card(1), 500, 5)))
		applied <- err
	}()
	// Cancel once the batch waits for the lock (its request ended).
	for queued, deadline := 0, time.Now().Add(30*time.Second); queued == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the batch never queued for the writers' lock")
		}
		if err := holder.QueryRowContext(ctx, writersLocks+` AND NOT granted`).Scan(&queued); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-applied; err == nil || !strings.Contains(err.Error(), "other writers") {
		t.Fatalf("apply while another writer runs alone: got %v, want an error saying it waited for the ledger's other writers", err)
	}
	// The server may see the cancellation after the holder lets go and
	// grant the abandoned wait; that transaction then ends and lets go.
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	held := -1
	for deadline := time.Now().Add(10 * time.Second); held != 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := s.DB().QueryRowContext(ctx, writersLocks).Scan(&held); err != nil {
			t.Fatal(err)
		}
	}
	if held != 0 {
		t.Errorf("%d sessions still hold or wait for the writers' lock 10 s after the cancelled wait", held)
	}
	tl.Seq, tl.Prev = 0, nil // the till resends from the start: nothing was applied
	done := make(chan error, 1)
	go func() {
		_, err := s.Apply(ctx, tl.Seal(tl.Earn(storetest.Card(1), 500, 5)))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the next batch: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the next batch still waits for the writers' lock after 30 s: a session kept it")
	}
}

// postgresWithRules opens a fresh PostgreSQL ledger (the test is skipped
// without one) with the test rules published.
// holdTableLock locks table of s's PostgreSQL database in EXCLUSIVE mode
// in a transaction of its own, which it returns, rolled back when the test
// ends if the test has not ended it.
func holdTableLock(t *testing.T, s *sqlstore.Store, table string) *sql.Tx {
	t.Helper()
	holder, err := s.DB().BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Rollback() })
	if _, err := holder.Exec(`LOCK TABLE ` + table + ` IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	return holder
}

func postgresWithRules(t *testing.T, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	storetest.PostgresURL(t)
	s := storetest.OpenPostgres(t, opts)
	if err := s.PublishRules(context.Background(), storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatal(err)
	}
	return s
}
