package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// maxBatchOps bounds a batch, so one request cannot hold the writer for long.
const maxBatchOps = 10000

// validateBatch checks that a batch agrees with itself.
func validateBatch(b *cloud.Batch) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: terminal %s epoch %d: %s", cloud.ErrInvalidBatch, b.Terminal, b.Epoch, fmt.Sprintf(format, args...))
	}
	switch {
	case b.Terminal == "" || len(b.Terminal) > loyalty.MaxFieldLen:
		return bad("terminal ID must be 1 to %d bytes", loyalty.MaxFieldLen)
	case b.Epoch == 0:
		return bad("epoch 0: a journal's epochs start at 1")
	case b.FirstSeq == 0 || b.LastSeq < b.FirstSeq:
		return bad("sequence range %d..%d: want 1 <= first <= last", b.FirstSeq, b.LastSeq)
	case b.LastSeq > 1<<62:
		return bad("sequence %d out of range", b.LastSeq)
	case uint64(len(b.Ops)) != b.LastSeq-b.FirstSeq+1:
		return bad("%d ops for sequence range %d..%d", len(b.Ops), b.FirstSeq, b.LastSeq)
	case len(b.Ops) > maxBatchOps:
		return bad("%d ops, at most %d per batch", len(b.Ops), maxBatchOps)
	case len(b.Hash) == 0 || len(b.Hash) > 64 || len(b.PrevHash) > 64:
		return bad("batch hash must be 1 to 64 bytes and the previous hash at most 64")
	case b.ReceivedAt.IsZero():
		return bad("no receive time")
	}
	for i := range b.Ops {
		op := &b.Ops[i]
		if op.Terminal != b.Terminal || op.Epoch != b.Epoch || op.Seq != b.FirstSeq+uint64(i) {
			return bad("op %d is %s epoch %d seq %d, want %s epoch %d seq %d", i, op.Terminal, op.Epoch, op.Seq, b.Terminal, b.Epoch, b.FirstSeq+uint64(i))
		}
	}
	return nil
}

// Apply implements cloud.Ledger.
func (s *Store) Apply(ctx context.Context, bt cloud.Batch) (cloud.Applied, error) {
	out, err := s.apply(ctx, bt)
	if errors.As(err, new(*commitError)) {
		// The connection broke as the batch committed, so it may have
		// been applied. Asking again is safe: a batch applied is
		// answered as its replay, with its results.
		out, err = s.apply(ctx, bt)
	}
	return out, err
}

func (s *Store) apply(ctx context.Context, bt cloud.Batch) (cloud.Applied, error) {
	if err := validateBatch(&bt); err != nil {
		return cloud.Applied{}, err
	}
	var out cloud.Applied
	var store string
	var seen []loyalty.CardHash // in card_stores for store once committed
	err := s.inTx(ctx, func(tx *dbtx) error {
		seen = nil
		out = cloud.Applied{Terminal: bt.Terminal, Epoch: bt.Epoch}
		ts, err := s.terminalState(ctx, tx, bt.Terminal, bt.Epoch)
		if err != nil {
			return err
		}
		store = ts.store
		if cloud.TerminalStatus(ts.status) != cloud.TerminalActive {
			return fmt.Errorf("apply batch from %s: %w", bt.Terminal, cloud.ErrTerminalRevoked)
		}
		if bt.KeyID != "" && bt.KeyID != ts.keyID {
			// Verified under a key revoked and replaced since, while the
			// batch waited for the writer.
			return fmt.Errorf("apply batch from %s: signed with key %s, which was replaced by %s: %w", bt.Terminal, bt.KeyID, ts.keyID, cloud.ErrTerminalRevoked)
		}
		// A terminal books only to the store it was enrolled at: an op
		// claiming another store would move that store's lots, liability
		// and shortfall under a key that store never enrolled.
		for i := range bt.Ops {
			if op := &bt.Ops[i]; op.Store != store {
				return fmt.Errorf("%w: terminal %s is enrolled at store %q, but op %d (seq %d) claims store %q; fix the terminal's store setting or enroll it again",
					cloud.ErrInvalidBatch, bt.Terminal, store, i, op.Seq, op.Store)
			}
		}
		wm, lastHash, latest := ts.watermark, ts.lastHash, ts.latest
		out.Watermark, out.LatestEpoch = wm, max(latest, bt.Epoch)
		seqErr := func(kind string) error {
			return &cloud.SequenceError{Kind: kind, Terminal: bt.Terminal, Epoch: bt.Epoch, Watermark: wm, LatestEpoch: latest, First: bt.FirstSeq, Last: bt.LastSeq, LastHash: lastHash}
		}
		switch {
		case bt.LastSeq <= wm:
			results, ok, err := s.replay(ctx, tx, &bt)
			if err != nil {
				return err
			}
			if !ok {
				return seqErr(cloud.SeqDiverged)
			}
			out.Replay, out.Results, out.LastHash, out.RulesVersion = true, results, lastHash, ts.rulesVersion
			if out.Snapshots, err = s.snapshotsIn(ctx, tx, batchCards(&bt), store, bt.ReceivedAt); err != nil {
				return fmt.Errorf("read the batch's snapshots: %w", err)
			}
			return nil
		case bt.FirstSeq <= wm:
			return seqErr(cloud.SeqRewind)
		case bt.FirstSeq > wm+1:
			return seqErr(cloud.SeqGap)
		case !bytes.Equal(bt.PrevHash, lastHash): // both empty for an epoch's first batch
			return seqErr(cloud.SeqChain)
		}
		b := newBook(s, tx, micros(bt.ReceivedAt))
		b.rulesVersion, b.lapsedUntil = ts.rulesVersion, ts.lapsedUntil
		rows, err := b.applyOps(ctx, &bt, store)
		if err != nil {
			return err
		}
		if err := b.flush(ctx, &bt, store, rows); err != nil {
			return err
		}
		if err := b.checkDirty(ctx); err != nil {
			return err
		}
		for h, cd := range b.cards {
			if cd.used || cd.seen {
				seen = append(seen, h)
			}
		}
		out.Watermark, out.LastHash = bt.LastSeq, bt.Hash
		out.Results = make([]cloud.OpResult, len(rows))
		for i, r := range rows {
			out.Results[i] = r.result()
		}
		out.RulesVersion = b.rulesVersion
		if out.Snapshots, err = b.snapshots(ctx, batchCards(&bt), b.cards, b.rules, bt.ReceivedAt); err != nil {
			return fmt.Errorf("read the batch's snapshots: %w", err)
		}
		return nil
	})
	if err != nil {
		return cloud.Applied{}, err
	}
	if !out.Replay {
		s.batchApplied()
	}
	s.seen.add(store, seen)
	return out, nil
}

// batchCards lists the cards of a batch's ops, each once.
func batchCards(bt *cloud.Batch) []loyalty.CardHash {
	var cards []loyalty.CardHash
	seen := make(map[loyalty.CardHash]bool, len(bt.Ops))
	for i := range bt.Ops {
		if c := bt.Ops[i].Card; !c.IsZero() && !seen[c] {
			seen[c] = true
			cards = append(cards, c)
		}
	}
	return cards
}

// terminalState is what a batch needs to know of its terminal before its
// ops: read in one statement, as each statement is a round trip on
// PostgreSQL and a small batch makes only about a dozen.
type terminalState struct {
	store, status string
	keyID         string // the terminal's enrolled key
	watermark     uint64 // of the batch's epoch
	lastHash      []byte // of the epoch's last batch
	latest        uint32 // the terminal's latest epoch
	rulesVersion  uint32 // the program's current rules
	lapsedUntil   int64  // how far point expiry has run, Unix micros
}

// terminalState reads a terminal's store and status, the watermark and
// last batch hash of its epoch, its latest epoch, the current rules
// version and how far point expiry has run.
func (s *Store) terminalState(ctx context.Context, tx *dbtx, terminal string, epoch uint32) (terminalState, error) {
	var ts terminalState
	rows, err := tx.query(ctx, qTerminalState, terminal)
	if err != nil {
		return ts, fmt.Errorf("read terminal %s: %w", terminal, err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var e, w sql.NullInt64
		var h []byte
		var v int64
		if err := rows.Scan(&ts.store, &ts.status, &ts.keyID, &e, &w, &h, &v, &ts.lapsedUntil); err != nil {
			return ts, fmt.Errorf("read terminal %s: %w", terminal, err)
		}
		found, ts.rulesVersion = true, uint32(v)
		if !e.Valid {
			continue // no epoch yet
		}
		ts.latest = max(ts.latest, uint32(e.Int64))
		if uint32(e.Int64) == epoch {
			ts.watermark, ts.lastHash = uint64(w.Int64), h
		}
	}
	if err := rows.Err(); err != nil {
		return ts, fmt.Errorf("read terminal %s: %w", terminal, err)
	}
	if !found {
		return ts, fmt.Errorf("apply batch from %s: %w", terminal, cloud.ErrUnknownTerminal)
	}
	return ts, nil
}

// Watermark implements cloud.Ledger.
func (s *Store) Watermark(ctx context.Context, terminal string, epoch uint32) (uint64, uint32, error) {
	var wm uint64
	var latest uint32
	rows, err := s.rdb.QueryContext(ctx, s.q(`SELECT epoch, watermark FROM epochs WHERE terminal = ?`), terminal)
	if err != nil {
		return 0, 0, fmt.Errorf("read watermark of %s: %w", terminal, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e, w int64
		if err := rows.Scan(&e, &w); err != nil {
			return 0, 0, fmt.Errorf("read watermark of %s: %w", terminal, err)
		}
		latest = max(latest, uint32(e))
		if uint32(e) == epoch {
			wm = uint64(w)
		}
	}
	return wm, latest, rows.Err()
}

// replay returns the results the ops of bt got when they were applied,
// for a batch that lies at or below the watermark, and false when the
// ledger holds other ops at some of its sequences. The batch need not be
// cut as it was first sent (a journal restored from a backup cuts its own
// boundaries): each op must be the op applied at its sequence, by ID and
// content. So a terminal learns which of its ops the ledger holds only for
// the ops it sends, never from a watermark alone.
func (s *Store) replay(ctx context.Context, tx *dbtx, bt *cloud.Batch) ([]cloud.OpResult, bool, error) {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, seq, status, reason, posted, flags, digest FROM ops WHERE terminal = ? AND epoch = ? AND seq >= ? AND seq <= ? ORDER BY seq`),
		bt.Terminal, int64(bt.Epoch), int64(bt.FirstSeq), int64(bt.LastSeq))
	if err != nil {
		return nil, false, fmt.Errorf("read results of batch %d..%d of %s: %w", bt.FirstSeq, bt.LastSeq, bt.Terminal, err)
	}
	defer rows.Close()
	results := make([]cloud.OpResult, 0, len(bt.Ops))
	same := true
	for rows.Next() {
		var r cloud.OpResult
		var id, held []byte
		var seq, status, posted, flags int64
		if err := rows.Scan(&id, &seq, &status, &r.Reason, &posted, &flags, &held); err != nil {
			return nil, false, fmt.Errorf("read results of batch: %w", err)
		}
		copy(r.ID[:], id)
		r.Seq, r.Status, r.Points, r.Flags = uint64(seq), cloud.Status(status), loyalty.Points(posted), cloud.Flags(flags)
		if i := len(results); i >= len(bt.Ops) || r.ID != bt.Ops[i].ID || r.Seq != bt.Ops[i].Seq || !bytes.Equal(held, digest(&bt.Ops[i])) {
			same = false
		}
		results = append(results, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read results of batch: %w", err)
	}
	if len(results) != len(bt.Ops) {
		return nil, false, fmt.Errorf("%w: batch %d..%d of %s has %d op rows", cloud.ErrInvariant, bt.FirstSeq, bt.LastSeq, bt.Terminal, len(results))
	}
	return results, same, nil
}
