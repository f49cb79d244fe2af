package sqlstore

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tillpoint/tillpoint/cloud"
)

// storageFull reports an error of a database that had no room to write:
// SQLite's SQLITE_FULL (the disk, or max_page_count), a file system's
// ENOSPC, PostgreSQL's disk_full.
func storageFull(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "53100" {
		return true
	}
	return errors.Is(err, syscall.ENOSPC)
}

// fullHold is how long after a write found the storage full Ping keeps
// saying so, unless a batch is applied meanwhile: long enough that a load
// balancer polling readiness sees it and the tills back off, short enough
// that the cloud tries writing again soon after the operator frees space.
// Only a batch applied ends it early: a probe of its own, or any other
// write that succeeds (an enrollment code, a lease, a batch acknowledged
// again without a write), would not tell, since a small write may fit
// where a batch does not.
const fullHold = 30 * time.Second

// classifyFull returns err marked cloud.ErrStorageFull, and remembers when,
// if it is an error of a full storage; any other err unchanged.
func (s *Store) classifyFull(err error) error {
	if err == nil || errors.Is(err, cloud.ErrStorageFull) || !storageFull(err) {
		return err
	}
	s.fullAt.Store(time.Now().UnixNano())
	if n, log := s.fullLog.Tick(); log {
		s.log.Error("the ledger's storage is full: writes are refused (batches with 503 storage_full, which the tills keep and send again) until there is room; free space on the database's volume",
			"refused", n, "err", err)
	}
	return fmt.Errorf("%w: %w", cloud.ErrStorageFull, err)
}

// fullSince returns when a write last found the storage full, if that was
// within fullHold.
func (s *Store) fullSince() (time.Time, bool) {
	at := s.fullAt.Load()
	if at == 0 || time.Since(time.Unix(0, at)) >= fullHold {
		return time.Time{}, false
	}
	return time.Unix(0, at), true
}

// batchApplied ends the full storage's hold, if any, once a batch's ops
// were written: the storage has room for batches again.
func (s *Store) batchApplied() {
	if s.fullAt.Load() != 0 && s.fullAt.Swap(0) != 0 {
		s.fullLog.Reset()
		s.log.Info("the ledger's storage has room again: batches are applied")
	}
}
