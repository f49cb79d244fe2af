package journal

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Report is what Verify checked.
type Report struct {
	Ops    int64
	Epochs int64
	Epoch  uint32 // the last op's epoch and seq
	Seq    uint64
	Link   Link // the last link of the chain
}

// Verify checks the database's integrity (SQLite's quick_check), then walks
// every op in insertion order: its body decodes to a valid op of this
// terminal, the columns agree with the body, epochs only grow, seq starts
// at 1 in each epoch and has no gap, and each link is SHA-256 of the
// previous link and the body. It returns a *ChainError (which wraps
// ErrCorrupt) naming the first op that breaks one of those.
func (j *Journal) Verify(ctx context.Context) (Report, error) {
	var rep Report
	tx, err := j.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return rep, fmt.Errorf("verify: %w", classify(err))
	}
	defer tx.Rollback()

	var check string
	if err := tx.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&check); err != nil {
		return rep, fmt.Errorf("verify: %w", classify(err))
	}
	if check != "ok" {
		return rep, fmt.Errorf("%w: sqlite quick_check: %s", ErrCorrupt, check)
	}

	epochs := map[uint32]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT epoch FROM epochs")
	if err != nil {
		return rep, fmt.Errorf("verify: %w", classify(err))
	}
	for rows.Next() {
		var e uint32
		if err := rows.Scan(&e); err != nil {
			rows.Close()
			return rep, fmt.Errorf("verify: %w", classify(err))
		}
		epochs[e] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("verify: %w", classify(err))
	}
	rep.Epochs = int64(len(epochs))

	rows, err = tx.QueryContext(ctx, "SELECT pos, epoch, seq, id, kind, card, points, offline, wall_time, body, link FROM ops ORDER BY pos")
	if err != nil {
		return rep, fmt.Errorf("verify: %w", classify(err))
	}
	defer rows.Close()
	var (
		prev     Link
		prevPos  int64
		started  bool
		op       loyalty.Op
		r        row
		body     []byte
		linkCol  []byte
		idCol    []byte
		cardCol  []byte
		epochCol uint32
	)
	for rows.Next() {
		if err := rows.Scan(&r.pos, &epochCol, &r.seq, &idCol, &r.kind, &cardCol, &r.points, &r.offline, &r.wall, &body, &linkCol); err != nil {
			return rep, fmt.Errorf("verify: %w", classify(err))
		}
		broken := func(format string, args ...any) error {
			return &ChainError{Pos: r.pos, Epoch: epochCol, Seq: uint64(r.seq), Problem: fmt.Sprintf(format, args...)}
		}
		if r.pos <= prevPos {
			return rep, broken("row position %d after %d", r.pos, prevPos)
		}
		prevPos = r.pos
		if err := op.UnmarshalBinary(body); err != nil {
			return rep, broken("stored op does not decode: %v", err)
		}
		switch {
		case !epochs[epochCol]:
			return rep, broken("epoch %d was never started", epochCol)
		case started && epochCol < rep.Epoch:
			return rep, broken("epoch %d after epoch %d", epochCol, rep.Epoch)
		case (!started || epochCol != rep.Epoch) && r.seq != 1:
			return rep, broken("epoch %d starts at seq %d, want 1", epochCol, r.seq)
		case started && epochCol == rep.Epoch && uint64(r.seq) != rep.Seq+1:
			return rep, broken("seq %d follows seq %d: gap or repeat", r.seq, rep.Seq)
		}
		switch {
		case op.Epoch != epochCol || op.Seq != uint64(r.seq):
			return rep, broken("op says epoch %d seq %d", op.Epoch, op.Seq)
		case !bytes.Equal(idCol, op.ID[:]) || r.kind != int64(op.Kind) || !bytes.Equal(cardCol, op.Card[:]) ||
			r.points != int64(op.Points) || (r.offline != 0) != op.Offline || r.wall != op.WallTime.UnixNano():
			return rep, broken("columns disagree with the stored op %s", op.ID)
		case op.Terminal != j.terminal:
			return rep, broken("op %s is terminal %q's, journal is %q's", op.ID, op.Terminal, j.terminal)
		}
		if err := op.Validate(); err != nil {
			return rep, broken("invalid op: %v", err)
		}
		want := ChainLink(prev, body)
		if !bytes.Equal(linkCol, want[:]) {
			return rep, broken("link %x, want %x: the op or an earlier one was altered", linkCol, want[:])
		}
		prev = want
		rep.Ops++
		rep.Epoch, rep.Seq, rep.Link = epochCol, uint64(r.seq), want
		started = true
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("verify: %w", classify(err))
	}
	return rep, nil
}

type row struct {
	pos, seq, kind, points, offline, wall int64
}
