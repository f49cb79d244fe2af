package sqlstore_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// BenchmarkIngestSQLite measures Apply in ops/s with batches of 1 (a till
// online sends small batches: what counts there is the cost of a batch),
// 100 and 1,000 ops of a mixed workload (earns re-evaluated against the rules,
// redeems consuming lots, overspends, reversals, enrolls linking held
// cards), every check and the fresh snapshots included, against a bare
// multi-row insert of the same op rows into a table of the same shape in
// the same database: the cost of only storing the batch durably. The
// cards are new to the program (held, the costlier case: longer owner
// IDs, and every lot stays in the index by owner); "members" runs the
// same batches of 1,000 after 9,000 of the 10,000 cards are enrolled, as
// in a program that has been running for a while. The till figures each
// earn with the card's tier as of its last batch's ack, as the agent does
// from its snapshots, so the cloud re-evaluates only the earns of cards
// that changed tier since; "untiered" has the till figure every earn at
// the base rate, so that every earn of a card above the first tier is
// re-evaluated: a second transaction and a second lot for most earns.
func BenchmarkIngestSQLite(b *testing.B) {
	benchIngest(b, ledgerKinds[0].open)
}

// BenchmarkIngestPostgres is BenchmarkIngestSQLite on PostgreSQL.
func BenchmarkIngestPostgres(b *testing.B) {
	storetest.PostgresURL(b)
	benchIngest(b, ledgerKinds[1].open)
}

// BenchmarkIngestPgBouncer is BenchmarkIngestPostgres through a real
// PgBouncer pooling by transaction (four server sessions), as production
// deployments often connect: what the pooler's hop costs.
func BenchmarkIngestPgBouncer(b *testing.B) {
	storetest.PostgresURL(b)
	benchIngest(b, func(tb testing.TB) *sqlstore.Store { return openBehindPgBouncer(tb, 4) })
}

// ledgerKinds are the two databases the benchmarks run on: SQLite, then
// PostgreSQL (which a benchmark skips, by storetest.PostgresURL, when no
// server is set).
var ledgerKinds = []struct {
	name     string
	postgres bool
	open     func(testing.TB) *sqlstore.Store
}{
	{"sqlite", false, func(tb testing.TB) *sqlstore.Store { return storetest.OpenSQLite(tb, sqlstore.Options{}) }},
	{"postgres", true, func(tb testing.TB) *sqlstore.Store { return storetest.OpenPostgres(tb, sqlstore.Options{}) }},
}

// BenchmarkIngestAtScale is batch=1000 on a ledger ten times the size:
// 100,000 cards, 90,000 of them enrolled, after 300 batches of the same
// workload (about 220,000 lots), on SQLite and on PostgreSQL. At this
// size a batch touches a page of its own for most owners, where at 10,000
// cards the owners' structures fit in a few hundred pages that every
// batch dirties anyway. The ledger is built once per database, before the
// first timed run (a minute or more on PostgreSQL), and each run goes on
// from where the last left it; on PostgreSQL it is vacuumed and analyzed
// after the build, as autovacuum would have done on a server that runs it
// (the test server may not).
func BenchmarkIngestAtScale(b *testing.B) {
	for _, run := range ledgerKinds {
		var s *sqlstore.Store
		var w *workload
		b.Run(run.name, func(sb *testing.B) {
			if run.postgres {
				storetest.PostgresURL(sb)
			}
			if s == nil {
				s = run.open(b) // on the parent benchmark, so that the ledger outlives this run
				w = buildAtScale(sb, s)
			}
			timeApply(sb, s, w, 1000)
		})
	}
}

// BenchmarkIngestConcurrent measures what a ledger applies when several
// terminals send at once, each from a store of its own and each sending
// its next batch of 1,000 ops (or 100: "batch=100") as soon as the last
// was acknowledged, as tills catching up after an outage do. The 10,000 cards are split
// between the stores ("own cards": concurrent batches share no owner), or
// every till draws from all of them ("shared cards": any two concurrent
// batches share about a hundred owners, a worst case, so that on
// PostgreSQL one of the two fails to serialize and runs again). SQLite
// has one writer: its terminals queue. "retried-%" is the share of
// batches that ran more than once; "rerun-%" of those that ran more than
// twice.
func BenchmarkIngestConcurrent(b *testing.B) {
	for _, db := range ledgerKinds {
		for _, run := range []struct {
			name      string
			terminals int
			shared    bool
			size      int
		}{
			{"terminals=1", 1, false, 1000},
			{"terminals=4,own-cards", 4, false, 1000},
			{"terminals=4,shared-cards", 4, true, 1000},
			{"terminals=4,own-cards,batch=100", 4, false, 100},
		} {
			b.Run(db.name+"/"+run.name, func(b *testing.B) {
				if db.postgres {
					storetest.PostgresURL(b)
				}
				benchConcurrent(b, db.open(b), run.terminals, run.shared, run.size)
			})
		}
	}
}

func benchConcurrent(b *testing.B, s *sqlstore.Store, terminals int, shared bool, size int) {
	ctx := context.Background()
	if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		b.Fatal(err)
	}
	const cards = 10_000
	perTill := max(1, b.N/terminals)
	queues := make([][]cloud.Batch, terminals)
	for t := range queues {
		first, n := t*cards/terminals, cards/terminals
		if shared {
			first, n = 0, cards
		}
		tl := storetest.NewTill(b, s, fmt.Sprintf("t%d", t), fmt.Sprintf("s%d", t))
		w := newWorkloadOver(tl, first, n, uint64(t+1))
		for range perTill {
			queues[t] = append(queues[t], w.next(size))
		}
	}
	before := s.Stats()
	errs := make(chan error, terminals)
	b.ResetTimer()
	for _, q := range queues {
		go func() {
			for i, bt := range q {
				if _, err := s.Apply(ctx, bt); err != nil {
					errs <- fmt.Errorf("terminal %s batch %d: %w", bt.Terminal, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range queues {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	after := s.Stats()
	batches := float64(perTill * terminals)
	b.ReportMetric(batches*float64(size)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(100*float64(after.Retried-before.Retried)/batches, "retried-%")
	b.ReportMetric(100*float64(after.Rerun-before.Rerun)/batches, "rerun-%")
}

// buildAtScale fills s with the ledger BenchmarkIngestAtScale times and
// returns the workload that goes on from it.
func buildAtScale(b *testing.B, s *sqlstore.Store) *workload {
	ctx := context.Background()
	w := startWorkload(b, s, 100_000, 90_000)
	for i := 0; i < 300; i++ {
		if _, err := s.Apply(ctx, w.next(1000)); err != nil {
			b.Fatalf("build the ledger: batch %d: %v", i, err)
		}
	}
	vacuumPostgres(b, s)
	return w
}

// vacuumPostgres vacuums and analyzes a PostgreSQL ledger just built, as
// autovacuum would have done on a server that runs it (the test server
// may not): without statistics the planner plans for empty tables.
func vacuumPostgres(b *testing.B, s *sqlstore.Store) {
	if s.Dialect() != sqlstore.Postgres {
		return
	}
	if _, err := s.DB().ExecContext(context.Background(), `VACUUM ANALYZE`); err != nil {
		b.Fatalf("vacuum the ledger: %v", err)
	}
}

func benchIngest(b *testing.B, open func(testing.TB) *sqlstore.Store) {
	for _, run := range []struct {
		name     string
		size     int
		members  int
		untiered bool
	}{{"batch=1", 1, 0, false}, {"batch=100", 100, 0, false}, {"batch=1000", 1000, 0, false}, {"batch=1000,members", 1000, 9000, false},
		{"batch=1000,untiered", 1000, 0, true}} {
		b.Run(run.name, func(b *testing.B) {
			s := open(b)
			w := startWorkload(b, s, 10_000, run.members)
			w.untiered = run.untiered
			timeApply(b, s, w, run.size)
		})
	}
}

// startWorkload publishes the test rules on s, enrolls terminal t1 of
// store s1, and returns a workload over cards cards, the first members of
// them enrolled.
func startWorkload(b *testing.B, s *sqlstore.Store, cards, members int) *workload {
	ctx := context.Background()
	if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		b.Fatal(err)
	}
	w := newWorkload(storetest.NewTill(b, s, "t1", "s1"), cards)
	if err := w.enroll(ctx, s, members); err != nil {
		b.Fatal(err)
	}
	return w
}

// timeApply times applying b.N batches of size ops of w's workload to s,
// against bareInsert of the same batches.
func timeApply(b *testing.B, s *sqlstore.Store, w *workload, size int) {
	ctx := context.Background()
	batches := make([]cloud.Batch, b.N)
	for i := range batches {
		batches[i] = w.next(size)
	}
	bareCPU := storetest.CPUTime()
	bare := bareInsert(b, s, batches)
	bareCPU = storetest.CPUTime() - bareCPU

	b.ResetTimer()
	cpu := storetest.CPUTime()
	reevaluated := 0
	for i := range batches {
		ack, err := s.Apply(ctx, batches[i])
		if err != nil {
			b.Fatalf("apply batch %d: %v", i, err)
		}
		for _, r := range ack.Results {
			if r.Flags&cloud.FlagReevaluated != 0 {
				reevaluated++
			}
		}
	}
	cpu = storetest.CPUTime() - cpu
	b.StopTimer()
	ops := float64(b.N * size)
	b.ReportMetric(100*float64(reevaluated)/ops, "reevaluated-%")
	ledger := b.Elapsed()
	b.ReportMetric(ops/ledger.Seconds(), "ops/s")
	b.ReportMetric(ops/bare.Seconds(), "bare-ops/s")
	b.ReportMetric(ledger.Seconds()/bare.Seconds(), "x-bare")
	// CPU time of this process per op: steadier than wall time on a
	// shared machine (for PostgreSQL it leaves out the server's).
	b.ReportMetric(float64(cpu.Microseconds())/ops, "cpu-µs/op")
	b.ReportMetric(float64(bareCPU.Microseconds())/ops, "bare-cpu-µs/op")
}

// bareInsert times storing the same op rows, batch by batch, one
// transaction each, into a table of the ops table's shape, through the
// same multi-row statements Apply uses, with nothing else.
func bareInsert(b *testing.B, s *sqlstore.Store, batches []cloud.Batch) time.Duration {
	ins, err := s.BareInserter(context.Background())
	if err != nil {
		b.Fatalf("bare table: %v", err)
	}
	start := time.Now()
	for _, bt := range batches {
		args := make([]any, 0, 20*len(bt.Ops))
		for i := range bt.Ops {
			op := &bt.Ops[i]
			args = append(args, op.Terminal, int64(op.Epoch), int64(op.Seq), op.ID[:], int64(1), "", int64(op.Kind), op.Store,
				op.Card[:], "", int64(op.Points), int64(op.Points), int64(op.RulesVersion), op.Reverses[:], int64(0),
				op.WallTime.UnixMicro(), int64(op.HLC), bt.ReceivedAt.UnixMicro(), op.ID[:], op.AppendCanonical(nil))
		}
		if err := ins(args); err != nil {
			b.Fatalf("bare insert: %v", err)
		}
	}
	return time.Since(start)
}

// workload makes batches of a till's ops: 74% earns over its cards,
// 20% redeems (some beyond the balance), 5% reversals of recent earns,
// 1% enrolls.
type workload struct {
	till   *storetest.Till
	rules  loyalty.Rules
	rnd    *rand.Rand
	recent []earned
	cards  []loyalty.CardHash
	linked map[int]bool
	// qualifying follows each card's tier points as the ledger counts
	// them: the cloud's figure of each earn, less the earns reversed.
	qualifying []loyalty.Points
	// untiered: the till figures every earn at the base rate.
	untiered bool
	// first is the number of cards[0] among the test cards.
	first int
}

// earned is an earn the workload may reverse, with the points the cloud
// figured for it.
type earned struct {
	op     loyalty.Op
	card   int
	posted loyalty.Points
}

func newWorkload(tl *storetest.Till, cards int) *workload {
	return newWorkloadOver(tl, 0, cards, 1)
}

// newWorkloadOver is a workload over the test cards first to
// first+cards-1, each card's member named by the card's number, drawn
// with seed.
func newWorkloadOver(tl *storetest.Till, first, cards int, seed uint64) *workload {
	w := &workload{till: tl, rules: storetest.TestRules(1), rnd: rand.New(rand.NewPCG(seed, 2)), linked: map[int]bool{}, first: first}
	for i := first; i < first+cards; i++ {
		w.cards = append(w.cards, storetest.Card(i))
	}
	w.qualifying = make([]loyalty.Points, len(w.cards))
	return w
}

// enroll links the first n cards to members, in batches of 1,000.
func (w *workload) enroll(ctx context.Context, l cloud.Ledger, n int) error {
	for first := 0; first < n; first += 1000 {
		var ops []loyalty.Op
		for ci := first; ci < min(first+1000, n); ci++ {
			w.linked[ci] = true
			ops = append(ops, w.till.Enroll(w.cards[ci], w.member(ci)))
		}
		if _, err := l.Apply(ctx, w.till.Seal(ops...)); err != nil {
			return fmt.Errorf("enroll cards %d to %d: %w", first, first+len(ops)-1, err)
		}
	}
	return nil
}

// member is the member card ci is enrolled to.
func (w *workload) member(ci int) loyalty.MemberID {
	return loyalty.MemberID(fmt.Sprintf("member-%d", w.first+ci))
}

// figure returns the points the rules give basket for a card with
// qualifying tier points.
func (w *workload) figure(op loyalty.Op, qualifying loyalty.Points) loyalty.Points {
	tier, _, _ := w.rules.TierFor(qualifying)
	pts, _, err := w.rules.Earn(*op.Basket, loyalty.Snapshot{Tier: tier}, op.WallTime)
	if err != nil {
		panic(err)
	}
	return pts
}

func (w *workload) next(size int) cloud.Batch {
	ops := make([]loyalty.Op, 0, size)
	// The till's snapshot of each card is as of the last batch's ack.
	acked := map[int]loyalty.Points{}
	for len(ops) < size {
		ci := w.rnd.IntN(len(w.cards))
		c := w.cards[ci]
		if _, ok := acked[ci]; !ok {
			acked[ci] = w.qualifying[ci]
		}
		switch k := w.rnd.IntN(100); {
		case k < 74:
			op := w.till.Earn(c, int64(100+w.rnd.IntN(10000)), 0)
			posted := w.figure(op, w.qualifying[ci])
			if w.untiered {
				op.Points = w.figure(op, 0)
			} else {
				op.Points = w.figure(op, acked[ci])
			}
			w.qualifying[ci] += posted
			ops = append(ops, op)
			e := earned{op, ci, posted}
			if len(w.recent) < 1000 {
				w.recent = append(w.recent, e)
			} else {
				w.recent[w.rnd.IntN(len(w.recent))] = e
			}
		case k < 94:
			ops = append(ops, w.till.Redeem(c, loyalty.Points(1+w.rnd.IntN(40)), w.rnd.IntN(2) == 0))
		case k < 99:
			if len(w.recent) == 0 {
				continue
			}
			i := w.rnd.IntN(len(w.recent))
			e := w.recent[i]
			ops = append(ops, w.till.Reverse(e.op))
			w.qualifying[e.card] = max(0, w.qualifying[e.card]-e.posted)
			w.recent[i] = w.recent[len(w.recent)-1]
			w.recent = w.recent[:len(w.recent)-1]
		default:
			if w.linked[ci] {
				continue
			}
			w.linked[ci] = true
			ops = append(ops, w.till.Enroll(c, w.member(ci)))
		}
	}
	return w.till.Seal(ops...)
}

// BenchmarkExpireBacklog times a first expiry run over a backlog, as when
// a ledger that never expired points is upgraded, or a cloud was stopped
// for months: batches of 1,000 ops of the ingest workload over 100,000
// cards, then one Expire at a time past every lot's expiry. It reports
// lots lapsed a second, against the ops a second the same ledger took in
// (x-ingest: the time to lapse a lot over the time to apply an op), and
// how long each chunk's transaction held the writer. On PostgreSQL the
// ledger is vacuumed and analyzed between the two. batches=1500 (about
// a million lots, several minutes a database) runs only when -bench names
// it.
func BenchmarkExpireBacklog(b *testing.B) {
	for _, k := range ledgerKinds {
		for _, batches := range []int{30, 120, 1500} {
			b.Run(fmt.Sprintf("%s/batches=%d", k.name, batches), func(b *testing.B) {
				if name := fmt.Sprintf("batches=%d", batches); batches > 120 && !strings.Contains(flag.Lookup("test.bench").Value.String(), name) {
					b.Skipf("a backlog of %d batches takes minutes; run it with -bench 'ExpireBacklog/.*/%s'", batches, name)
				}
				ctx := context.Background()
				var ingest, expire time.Duration
				var ops, lots int
				b.StopTimer()
				for range b.N {
					s := k.open(b)
					w := startWorkload(b, s, 100_000, 0)
					start := time.Now()
					for i := range batches {
						if _, err := s.Apply(ctx, w.next(1000)); err != nil {
							b.Fatalf("build the backlog: batch %d: %v", i, err)
						}
					}
					ingest += time.Since(start)
					ops += batches * 1000
					vacuumPostgres(b, s)
					b.StartTimer()
					start = time.Now()
					res, err := s.Expire(ctx, storetest.Start().AddDate(5, 0, 0))
					expire += time.Since(start)
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					lots += res.Lots
				}
				chunks := (lots + b.N*sqlstore.ExpireChunk - 1) / sqlstore.ExpireChunk
				b.ReportMetric(float64(lots)/float64(b.N), "lots")
				b.ReportMetric(float64(lots)/expire.Seconds(), "lots/s")
				b.ReportMetric(float64(ops)/ingest.Seconds(), "ingest-ops/s")
				b.ReportMetric((expire.Seconds()/float64(lots))/(ingest.Seconds()/float64(ops)), "x-ingest")
				b.ReportMetric(float64(expire.Milliseconds())/float64(chunks), "ms/chunk")
			})
		}
	}
}

// BenchmarkIngestDuringExpiry measures what a first expiry run over a
// backlog (BenchmarkExpireBacklog's, 79,858 lots) costs the tills sending
// meanwhile: one terminal applies batches of 100 ops back to back, first
// alone, then while Expire runs beside it, and the benchmark reports the
// median and the 99th percentile of Apply's latency in both phases and
// their ratios. On SQLite a batch waits for the chunk that holds the one
// writer; on PostgreSQL for the rows a chunk locks.
func BenchmarkIngestDuringExpiry(b *testing.B) {
	for _, k := range ledgerKinds {
		b.Run(k.name, func(b *testing.B) {
			ctx := context.Background()
			s := k.open(b)
			w := startWorkload(b, s, 100_000, 0)
			for i := range 120 {
				if _, err := s.Apply(ctx, w.next(1000)); err != nil {
					b.Fatalf("build the backlog: batch %d: %v", i, err)
				}
			}
			apply := func(n int) []time.Duration {
				took := make([]time.Duration, n)
				for i := range took {
					bt := w.next(100)
					start := time.Now()
					if _, err := s.Apply(ctx, bt); err != nil {
						b.Fatal(err)
					}
					took[i] = time.Since(start)
				}
				slices.Sort(took)
				return took
			}
			b.ResetTimer()
			alone := apply(max(b.N, 200))
			done := make(chan error, 1)
			var lapsed int
			go func() {
				res, err := s.Expire(ctx, storetest.Start().AddDate(5, 0, 0))
				lapsed = res.Lots
				done <- err
			}()
			var beside []time.Duration
			for running := true; running; {
				beside = append(beside, apply(20)...)
				select {
				case err := <-done:
					if err != nil {
						b.Fatal(err)
					}
					running = false
				default:
				}
			}
			b.StopTimer()
			slices.Sort(beside)
			p := func(d []time.Duration, q float64) float64 {
				return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(lapsed), "lots-lapsed")
			b.ReportMetric(float64(len(beside)), "batches-beside")
			b.ReportMetric(p(alone, 0.5), "alone-p50-ms")
			b.ReportMetric(p(alone, 0.99), "alone-p99-ms")
			b.ReportMetric(p(beside, 0.5), "beside-p50-ms")
			b.ReportMetric(p(beside, 0.99), "beside-p99-ms")
			b.ReportMetric(p(beside, 0.99)/p(alone, 0.99), "x-p99")
		})
	}
}
