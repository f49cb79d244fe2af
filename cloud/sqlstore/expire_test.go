package sqlstore_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// TestConcurrentExpiryLapsesEachLotOnce defends running expiry in several
// cloud processes over one ledger (each `tillpoint cloud` runs it on a
// timer): runs at once lapse every expired lot, none twice, and the
// ledger still balances. Expirable counts beforehand what they lapse, and
// nothing after.
func TestConcurrentExpiryLapsesEachLotOnce(t *testing.T) {
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, tl := openWithTill(t, open)
			const cards = 300
			var ops []loyalty.Op
			for i := range cards {
				ops = append(ops, tl.Earn(storetest.Card(i), 1000, 10), tl.Earn(storetest.Card(i), 1000, 10))
			}
			tl.Send(t, s, ops...)

			if got, err := s.Expirable(ctx, storetest.Start().AddDate(1, 0, 1)); err != nil || got.Lots != 2*cards || got.Points != 2*cards*10 {
				t.Errorf("expirable before expiry: %+v, %v; want %d lots, %d points", got, err, 2*cards, 2*cards*10)
			}
			if got, err := s.Expirable(ctx, storetest.Start().AddDate(0, 11, 0)); err != nil || got.Lots != 0 {
				t.Errorf("expirable before the lots' date: %+v, %v; want none", got, err)
			}

			const runs = 4
			lapsed := make([]loyalty.Points, runs)
			errs := make([]error, runs)
			var wg sync.WaitGroup
			for i := range runs {
				wg.Go(func() {
					res, err := s.Expire(ctx, storetest.Start().AddDate(1, 0, 1))
					lapsed[i], errs[i] = res.Points, err
				})
			}
			wg.Wait()
			var total loyalty.Points
			for i := range runs {
				if errs[i] != nil {
					t.Errorf("expiry run %d: %v", i, errs[i])
				}
				total += lapsed[i]
			}
			if total != 2*cards*10 {
				t.Errorf("runs lapsed %v, %d points in all; want %d, each lot once", lapsed, total, 2*cards*10)
			}
			if got, err := s.Expirable(ctx, storetest.Start().AddDate(1, 0, 1)); err != nil || got.Lots != 0 || got.Points != 0 {
				t.Errorf("expirable after expiry: %+v, %v; want nothing", got, err)
			}
			rep, err := s.Check(ctx)
			if err != nil || rep.Expired != 2*cards*10 || rep.Liability != 0 {
				t.Errorf("check: %+v, %v; want %d expired and no liability", rep, err, 2*cards*10)
			}
		})
	}
}

// TestExpiryOfABacklogLargerThanAChunk defends a first expiry run over a
// large backlog, which lapses it in several transactions: the chunks
// together lapse every expired lot once, owners whose lots fall in more
// than one chunk included, and the ledger balances after each.
func TestExpiryOfABacklogLargerThanAChunk(t *testing.T) {
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, tl := openWithTill(t, open)
			const lots, cards = 2*sqlstore.ExpireChunk + 300, 40 // earns
			for sent := 0; sent < lots; sent += 500 {
				var ops []loyalty.Op
				for i := sent; i < sent+500 && i < lots; i++ {
					tl.Now = tl.Now.Add(3 * time.Hour) // expiries interleave across the cards
					ops = append(ops, tl.Earn(storetest.Card(i%cards), 1000, 10))
				}
				tl.Send(t, s, ops...)
			}
			now := tl.Now.AddDate(2, 0, 0)
			want, err := s.Expirable(ctx, now)
			if err != nil || want.Lots < 2*sqlstore.ExpireChunk+1 { // the tiers' adjustments add lots of their own
				t.Fatalf("expirable: %+v, %v; want more than two chunks", want, err)
			}
			got, err := s.Expire(ctx, now)
			if err != nil || got != want {
				t.Errorf("expire: %+v, %v; want %+v", got, err, want)
			}
			if left, err := s.Expirable(ctx, now); err != nil || left.Lots != 0 {
				t.Errorf("expirable after the run: %+v, %v; want nothing", left, err)
			}
			rep, err := s.Check(ctx)
			if err != nil || rep.Expired != want.Points || rep.Liability != 0 {
				t.Errorf("check: expired %d, liability %d, %v; want %d expired and no liability", rep.Expired, rep.Liability, err, want.Points)
			}
		})
	}
}

// openWithTill opens a ledger with open, publishes the test rules on it,
// and enrolls till t1 of store s1.
func openWithTill(t *testing.T, open func(testing.TB) *sqlstore.Store) (*sqlstore.Store, *storetest.Till) {
	t.Helper()
	s := open(t)
	if err := s.PublishRules(context.Background(), storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatal(err)
	}
	return s, storetest.NewTill(t, s, "t1", "s1")
}

// TestOnlyOneCloudExpiresAtATime defends expiry run by several clouds over
// one ledger: while one holds the expiry lease, another's run lapses
// nothing and says it skipped; a lease whose holder died (not renewed for
// two minutes) is taken over; a finished run gives the lease back. Two
// Stores over one database stand for two cloud processes.
func TestOnlyOneCloudExpiresAtATime(t *testing.T) {
	ctx := context.Background()
	twoClouds(t, func(t *testing.T, first, second *sqlstore.Store, tl *storetest.Till) {
		var ops []loyalty.Op
		for i := range 50 {
			ops = append(ops, tl.Earn(storetest.Card(i), 1000, 10))
		}
		tl.Send(t, first, ops...)
		due := storetest.Start().AddDate(2, 0, 0)
		want, err := first.Expirable(ctx, due)
		if err != nil || want.Lots == 0 {
			t.Fatalf("expirable: %+v, %v", want, err)
		}

		// The first cloud is running expiry (it holds the lease).
		if taken, err := first.TakeExpiryLease(ctx, "running"); err != nil || !taken {
			t.Fatalf("take the free lease: %v, %v", taken, err)
		}
		if taken, err := second.TakeExpiryLease(ctx, "another"); err != nil || taken {
			t.Fatalf("take the lease another holds: %v, %v; want it refused", taken, err)
		}
		res, err := second.Expire(ctx, due)
		if err != nil || !res.Skipped || res.Lots != 0 {
			t.Errorf("expiry while another cloud runs it: %+v, %v; want it skipped, nothing lapsed", res, err)
		}
		if left, _ := second.Expirable(ctx, due); left != want {
			t.Errorf("a skipped run changed what is expirable: %+v, want %+v", left, want)
		}

		// It died three minutes ago: its lease has run out.
		if err := first.AgeExpiryLease(ctx, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		res, err = second.Expire(ctx, due)
		if err != nil || res.Skipped || res.Lots != want.Lots || res.Points != want.Points {
			t.Errorf("expiry after the holder died: %+v, %v; want all of %+v", res, err, want)
		}
		// The finished run gave the lease back.
		res, err = first.Expire(ctx, due)
		if err != nil || res.Skipped || res.Lots != 0 {
			t.Errorf("expiry after a finished run: %+v, %v; want it to run and find nothing", res, err)
		}
		storetest.AssertConserved(t, first)
	})
}

// TestAnExpiryRunThatLostItsLeaseStops defends the lease against a run
// that outlasts it: once another cloud has taken the lease over (the
// run's chunk took longer than the lease lasts, as on a stalled disk), the
// run commits no further chunk and says what it lapsed, the other cloud
// lapses the rest, and no lot lapses twice.
func TestAnExpiryRunThatLostItsLeaseStops(t *testing.T) {
	ctx := context.Background()
	twoClouds(t, func(t *testing.T, first, second *sqlstore.Store, tl *storetest.Till) {
		for b := range 3 { // more lots than one chunk lapses
			var ops []loyalty.Op
			for i := range 100 {
				ops = append(ops, tl.Earn(storetest.Card(b*100+i), 1000, 10))
			}
			tl.Send(t, first, ops...)
		}
		due := storetest.Start().AddDate(2, 0, 0)
		want, err := first.Expirable(ctx, due)
		if err != nil || want.Lots <= sqlstore.ExpireChunk {
			t.Fatalf("expirable: %+v, %v; want more than one chunk", want, err)
		}

		// The first chunk outlasts the lease (a stalled disk, a paused
		// VM), and another cloud takes the lease over.
		first.AfterExpireChunk(func() {
			if err := first.AgeExpiryLease(ctx, 3*time.Minute); err != nil {
				t.Error(err)
			}
			if taken, err := second.TakeExpiryLease(ctx, "other"); err != nil || !taken {
				t.Errorf("take the lease over: %v, %v", taken, err)
			}
		})
		res, err := first.Expire(ctx, due)
		if err != nil || res.Skipped || res.Lots != sqlstore.ExpireChunk {
			t.Fatalf("the run that lost its lease: %+v, %v; want it to stop after one chunk of %d lots", res, err, sqlstore.ExpireChunk)
		}
		left, err := second.Expirable(ctx, due)
		if err != nil || left.Lots != want.Lots-res.Lots || left.Points != want.Points-res.Points {
			t.Fatalf("expirable after the lost run: %+v, %v; want %+v less what it lapsed (%+v)", left, err, want, res)
		}

		// The cloud that took the lease over runs (its own holder
		// name is new each run: the taken-over row stands for it
		// until it runs out).
		if err := second.AgeExpiryLease(ctx, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
		rest, err := second.Expire(ctx, due)
		if err != nil || rest.Skipped || rest.Lots != left.Lots || rest.Points != left.Points {
			t.Errorf("the rest: %+v, %v; want %+v", rest, err, left)
		}
		rep, err := second.Check(ctx)
		if err != nil || rep.Expired != want.Points || rep.Liability != 0 {
			t.Errorf("check: expired %d, liability %d, %v; want %d expired once and no liability", rep.Expired, rep.Liability, err, want.Points)
		}
		storetest.AssertConserved(t, second)
	})
}

// twoClouds runs test on SQLite and on PostgreSQL with two Stores over one
// database, standing for two cloud processes: the first with the test
// rules published and till t1 of store s1 enrolled.
func twoClouds(t *testing.T, test func(t *testing.T, first, second *sqlstore.Store, tl *storetest.Till)) {
	for name, dsn := range map[string]func(*testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "ledger.db") },
		"postgres": func(t *testing.T) string { return storetest.PostgresSchema(t) },
	} {
		t.Run(name, func(t *testing.T) {
			url := dsn(t)
			open := func(t testing.TB) *sqlstore.Store { return openURL(t, url) }
			first, tl := openWithTill(t, open)
			test(t, first, open(t), tl)
		})
	}
}

// openURL opens the ledger at url, logging nowhere, until the test ends.
func openURL(t testing.TB, url string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), url, sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
