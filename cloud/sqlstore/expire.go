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

// Expire implements cloud.Ledger. It works in transactions of at most
// expireChunk lots, so a long run never holds the writer for long; each
// owner's expired points are one ledger transaction per run chunk.
func (s *Store) Expire(ctx context.Context, now time.Time) (cloud.ExpireResult, error) {
	var res cloud.ExpireResult
	for {
		var n int
		var pts int64
		err := s.inTx(ctx, func(tx *dbtx) error {
			var err error
			n, pts, err = s.expireChunk(ctx, tx, now)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("expire points: %w", err)
		}
		res.Lots += n
		res.Points += loyalty.Points(pts)
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
	err := s.rdb.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(CAST(SUM(remaining) AS BIGINT), 0) FROM lots WHERE expires_at <= ? AND remaining > 0`),
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
	rows, err := tx.QueryContext(ctx, s.q(selectLots+` WHERE l.expires_at <= ? AND l.remaining > 0 ORDER BY l.expires_at LIMIT ?`),
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
