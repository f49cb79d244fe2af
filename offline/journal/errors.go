package journal

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors returned by the journal. Storage failures are classified so the
// agent can tell the cashier what happened; each wraps the driver's error.
var (
	ErrClosed = errors.New("journal: closed")

	ErrStorageFull = errors.New("journal: disk full: nothing was recorded; free space on the terminal's disk, then retry")
	ErrReadOnly    = errors.New("journal: database is read-only: nothing was recorded; check the file's permissions and that its disk is mounted read-write")
	ErrCorrupt     = errors.New("journal: database is corrupt: stop the agent, keep the file for support and restore the journal (a restored journal starts a new epoch)")
	ErrIO          = errors.New("journal: disk I/O error: not acknowledged; check the terminal's disk, then retry (a retry that reports a duplicate was recorded after all)")

	ErrNotJournal    = errors.New("journal: not a tillpoint journal")
	ErrSchemaTooNew  = errors.New("journal: written by a newer tillpoint; upgrade this program before opening it")
	ErrWrongTerminal = errors.New("journal: belongs to another terminal")

	// ErrDuplicateOp reports an op whose ID is already in the journal. The
	// journal returns the stored op with it: an earlier attempt that
	// reported an error may have been durable after all.
	ErrDuplicateOp = errors.New("journal: op already recorded")
	// ErrDuplicateRequest reports a request key already mapped to another
	// op by AppendRequest: that request was durable; nothing was appended.
	ErrDuplicateRequest = errors.New("journal: request already recorded")
	// ErrAckAhead reports an acknowledgement for an op this journal does not
	// hold: the cloud is ahead of it (a restored journal). Call NewEpoch.
	ErrAckAhead = errors.New("journal: acknowledgement ahead of the journal")
	// ErrSealedConflict reports a sealed batch that overlaps a different
	// one: a batch is sealed once and resent with identical bytes.
	ErrSealedConflict = errors.New("journal: sealed batch conflicts with one already sealed")
	// ErrInvalid reports an argument the journal cannot store.
	ErrInvalid = errors.New("journal: invalid argument")
)

// classify wraps a driver error with the journal error an operator can act on.
func classify(err error) error {
	var se *sqlite.Error
	if err == nil || !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: %w", ErrStorageFull, err)
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN:
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case sqlite3.SQLITE_IOERR:
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	return err
}

// isUniqueViolation reports a UNIQUE or PRIMARY KEY constraint failure.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) &&
		(se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// ChainError names the first op at which Verify found the journal broken.
type ChainError struct {
	Pos     int64 // row position, 1-based, in insertion order
	Epoch   uint32
	Seq     uint64
	Problem string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("journal: broken at row %d (epoch %d seq %d): %s", e.Pos, e.Epoch, e.Seq, e.Problem)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true for a broken chain.
func (e *ChainError) Unwrap() error { return ErrCorrupt }
