package sqlstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// expireChunk is how many lots one expiry transaction lapses. Batches
// wait for the chunk in progress (on SQLite for the one writer), so the
// chunk is small: with 250, a first run over 80,000 lots on SQLite lapses
// 10,400 to 12,000 lots a second against 13,800 to 17,600 with 2,000, and
// the batches of 100 applied meanwhile take 28 to 32 ms at the median
// instead of 127 to 135 (BenchmarkIngestDuringExpiry, docs/benchmarks.md).
const expireChunk = 250

// lotExpired is true of a lot l with points left that expired by the
// statement's parameter. It is the condition of the partial index
// lots_expiring (remaining > 0, not the reads by owner's remaining <> 0),
// so that Expire and Expirable search it and stay in step with it.
const lotExpired = `l.expires_at <= ? AND l.remaining > 0`

// Expire implements cloud.Ledger. It works in transactions of at most
// expireChunk lots, so a long run never holds the writer for long; each
// owner's expired points are one ledger transaction per run chunk. A run
// holds the expiry lease, renewed with every chunk, so that of several
// clouds over one ledger one runs it while the others skip: several runs
// at once lapsed nothing twice, but conflicted over every chunk, and the
// batches beside them waited twice as long (docs/benchmarks.md).
func (s *Store) Expire(ctx context.Context, now time.Time) (cloud.ExpireResult, error) {
	var res cloud.ExpireResult
	holder, err := newLeaseHolder()
	if err != nil {
		return res, fmt.Errorf("expire points: %w", err)
	}
	switch taken, err := s.takeLease(ctx, expiryLease, holder); {
	case err != nil:
		return res, fmt.Errorf("expire points: %w", err)
	case !taken:
		res.Skipped = true
		return res, nil
	}
	defer func() {
		if err := s.releaseLease(context.WithoutCancel(ctx), expiryLease, holder); err != nil {
			s.log.Warn("could not release the expiry lease; other clouds wait for it to expire", "err", err, "within", leaseFor)
		}
	}()
	for {
		var n int
		var pts int64
		lost := false
		err := s.inTx(ctx, func(tx *dbtx) error {
			held, err := s.holdLease(ctx, tx, expiryLease, holder)
			if err != nil {
				return err
			}
			if !held {
				lost = true
				return nil
			}
			n, pts, err = s.expireChunk(ctx, tx, now)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("expire points: %w", err)
		}
		if lost {
			// A chunk outlasted the lease and another cloud took it over.
			s.log.Warn("another cloud took the expiry lease over; it lapses the rest", "lots", res.Lots, "points", res.Points)
			return res, nil
		}
		res.Lots += n
		res.Points += loyalty.Points(pts)
		if s.afterExpireChunk != nil {
			s.afterExpireChunk()
		}
		if n < expireChunk {
			return res, nil
		}
	}
}

// Expirable counts what Expire would lapse at now, changing nothing: for
// an operator to see, before a ledger that never expired points starts
// to, how much will lapse at once.
func (s *Store) Expirable(ctx context.Context, now time.Time) (cloud.ExpireResult, error) {
	var res cloud.ExpireResult
	var points int64
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(CAST(SUM(remaining) AS BIGINT), 0) FROM lots l WHERE `+lotExpired),
		micros(now)).Scan(&res.Lots, &points)
	if err != nil {
		return res, fmt.Errorf("count expired lots: %w", err)
	}
	res.Points = loyalty.Points(points)
	return res, nil
}

func (s *Store) expireChunk(ctx context.Context, tx *dbtx, now time.Time) (int, int64, error) {
	// In the order of the index of open lots by expiry, so that a chunk
	// reads its lots and no more: ordered by owner, every chunk sorted
	// every expired lot, and a large backlog took time quadratic in its
	// size (docs/benchmarks.md, eighth session).
	rows, err := tx.QueryContext(ctx, s.q(selectLots+` WHERE `+lotExpired+` ORDER BY l.expires_at LIMIT ?`),
		micros(now), expireChunk)
	if err != nil {
		return 0, 0, fmt.Errorf("read expired lots: %w", err)
	}
	var lots []*lot
	for rows.Next() {
		l, err := scanLot(rows)
		if err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("read expired lots: %w", err)
		}
		lots = append(lots, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("read expired lots: %w", err)
	}
	if len(lots) == 0 {
		return 0, 0, nil
	}
	// One ledger transaction per owner, the owners in order.
	byOwner := map[cloud.Owner][]*lot{}
	var owners []cloud.Owner
	for _, l := range lots {
		if byOwner[l.owner] == nil {
			owners = append(owners, l.owner)
		}
		byOwner[l.owner] = append(byOwner[l.owner], l)
	}
	slices.Sort(owners)
	b := newBook(s, tx, micros(now))
	var total int64
	for _, o := range owners {
		id, err := loyalty.NewOpID(now, rand.Reader)
		if err != nil {
			return 0, 0, err
		}
		t := &txn{id: id, part: partMain, kind: kindExpire}
		for _, l := range byOwner[o] {
			t.add(cloud.OwnerAccount(cloud.AccountAvail, o), -l.remaining)
			t.add(cloud.Account(cloud.AccountExpired, ""), l.remaining)
			b.uses = append(b.uses, lotUse{t.id, t.part, l.id, l.remaining})
			total += l.remaining
			l.remaining = 0
			l.dirty = true
			b.lots[l.id] = l
		}
		if err := b.commit(t); err != nil {
			return 0, 0, err
		}
	}
	if err := b.writeLedger(ctx); err != nil {
		return 0, 0, err
	}
	if err := tx.flush(ctx); err != nil {
		return 0, 0, err
	}
	if err := b.check(ctx, owners); err != nil {
		return 0, 0, err
	}
	return len(lots), total, nil
}
