package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
)

// defaultExpireEvery is how often a running cloud lapses expired points.
const defaultExpireEvery = time.Hour

// expirer lapses the points of lots past their expiry, on a timer in a
// running cloud, or once from `tillpoint cloud expire`.
type expirer struct {
	ledger  cloud.Ledger
	log     *slog.Logger
	metrics *cloudMetrics // nil outside a running cloud
}

// run lapses what has expired by now, and says what it did.
func (e *expirer) run(ctx context.Context, now time.Time) (cloud.ExpireResult, error) {
	res, err := e.ledger.Expire(ctx, now)
	if e.metrics != nil {
		e.metrics.expired(res, err, now)
	}
	switch {
	case err != nil && ctx.Err() == nil:
		e.log.Error("point expiry failed; the next run tries again, or run 'tillpoint cloud expire'", "err", err,
			"lots", res.Lots, "points", res.Points)
	case res.Skipped:
		e.log.Info("point expiry skipped: another cloud over this ledger is running it")
	case res.Lots > 0:
		e.log.Info("points expired", "lots", res.Lots, "points", res.Points)
	}
	return res, err
}

// every runs expiry now and then about every interval until ctx ends.
// Several cloud processes over one PostgreSQL ledger may each run it: a
// lot lapses once, whichever transaction commits first. Each wait is
// drawn from interval plus or minus a tenth, so that processes started
// together (a deployment) drift apart instead of running it together,
// and conflicting, ever after.
func (e *expirer) every(ctx context.Context, interval time.Duration) {
	for {
		_, _ = e.run(ctx, time.Now())
		t := time.NewTimer(jittered(interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// jittered returns d plus or minus up to a tenth of it.
func jittered(d time.Duration) time.Duration {
	tenth := d / 10
	if tenth <= 0 {
		return d
	}
	return d - tenth + rand.N(2*tenth+1)
}

const expireHelp = `
Lapses the points of every lot whose expiry has passed: each lot's
remaining points move to the program's expired account, in a ledger
transaction per card or member. A running 'tillpoint cloud' does this
every --expire-every (an hour by default); run this from cron instead
when that is set to 0. One run at a time: while another process runs it
over the same ledger, this one lapses nothing and says so; a run that
died gives its turn up within two minutes. Nothing ever lapses twice.

A ledger that has never expired points lapses everything past its expiry
at its first run. --dry-run tells how much that is, and changes nothing.
`

func (m *Main) runCloudExpire(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "cloud expire", "cloud expire [--db DB] [--dry-run]", expireHelp)
	dryRun := fs.Bool("dry-run", false, "count what would lapse now, and lapse nothing")
	return m.withLedger(ctx, fs, args, func(ledger *sqlstore.Store) error {
		now := time.Now()
		if *dryRun {
			res, err := ledger.Expirable(ctx, now)
			if err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "would expire %d lots, %d points (dry run: nothing changed)\n", res.Lots, res.Points)
			return nil
		}
		e := &expirer{ledger: ledger, log: slog.New(slog.DiscardHandler)}
		res, err := e.run(ctx, now)
		if err != nil {
			return fmt.Errorf("expire points (%d lots, %d points lapsed before the error stay lapsed; run again): %w", res.Lots, res.Points, err)
		}
		if res.Skipped {
			fmt.Fprintln(m.Stdout, "another cloud over this ledger is expiring points now; nothing done here")
			return nil
		}
		fmt.Fprintf(m.Stdout, "expired %d lots, %d points\n", res.Lots, res.Points)
		return nil
	})
}
