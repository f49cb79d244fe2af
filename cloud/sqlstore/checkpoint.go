package sqlstore

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tillpoint/tillpoint/internal/logevery"
)

// SQLite's WAL grows with every commit until a checkpoint copies its
// pages into the database file. Left to SQLite (wal_autocheckpoint), the
// commit that crosses the threshold does the copying, and its fsync, on
// the writer's path: a batch in every few paid for the others. The
// checkpointer does it instead on a connection of its own, in the
// background (PASSIVE: it never waits for, nor blocks, the writer or the
// readers), soon after writes, so that on a machine with a second core
// the copying runs beside the next batches. The writer keeps a far higher
// wal_autocheckpoint as a backstop.
const (
	checkpointEvery = 250 * time.Millisecond
	// backstopCheckpointPages is the writer's own wal_autocheckpoint.
	backstopCheckpointPages = 32768
)

// checkpointer runs PASSIVE checkpoints of a SQLite database while writes
// happen.
type checkpointer struct {
	db     *sql.DB
	writes atomic.Uint64 // commits so far
	stop   chan struct{}
	done   sync.WaitGroup
	log    *slog.Logger

	failures   int              // checkpoints failed in a row
	failureLog logevery.Limiter // a failing checkpointer would log four times a second
}

func startCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, stop: make(chan struct{}), log: log}
	c.done.Add(1)
	go c.run()
	return c
}

// wrote notes a committed write transaction.
func (c *checkpointer) wrote() { c.writes.Add(1) }

func (c *checkpointer) run() {
	defer c.done.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var seen uint64
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if n := c.writes.Load(); n != seen {
			seen = n
			c.checkpoint()
		}
	}
}

func (c *checkpointer) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var busy, frames, copied int
	err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
	switch {
	case err != nil:
		// The writer's own checkpoints still bound the WAL, unless they
		// fail for the same reason (a full disk): then the operator has
		// to act.
		c.failures++
		if _, log := c.failureLog.Tick(); log {
			c.log.Warn("background WAL checkpoint failing; the writer's own checkpoints take over, and if they fail too the WAL grows: check the ledger's disk",
				"err", err, "failures_in_a_row", c.failures)
		}
	case c.failures > 0:
		c.log.Info("background WAL checkpoint works again", "failures_before", c.failures)
		c.failures = 0
		c.failureLog.Reset()
	}
}

// close stops the checkpointer and releases its connection.
func (c *checkpointer) close() error {
	close(c.stop)
	c.done.Wait()
	return c.db.Close()
}
