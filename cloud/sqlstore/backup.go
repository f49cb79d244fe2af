package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"

	"github.com/tillpoint/tillpoint/cloud"
)

// ErrBackupExists is returned by BackupTo when its target exists: a backup
// never overwrites a file.
var ErrBackupExists = errors.New("backup target exists")

// BackupTo writes a consistent copy of a SQLite ledger to path, a new file
// (mode 0600), while the ledger keeps serving: the copy is the ledger as of
// one commit (VACUUM INTO, on a connection beside the writer), synced to disk before BackupTo
// returns. A cloud restored from it lacks what was applied after it; the
// terminals send that again when the cloud answers their next batch with
// its older watermark, as their journals keep every op. Enrollments,
// revocations, rules and gossip keys made after it are lost.
//
// PostgreSQL ledgers are backed up with PostgreSQL's own tools.
func (s *Store) BackupTo(ctx context.Context, path string) error {
	if s.dialect != SQLite {
		return fmt.Errorf("%w: back up a PostgreSQL ledger with pg_dump or continuous archiving, not here", cloud.ErrInvalidInput)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %s; choose a new name, backups never overwrite", ErrBackupExists, path)
	}
	if err != nil {
		return fmt.Errorf("create backup %s: %w", path, err)
	}
	f.Close()
	// VACUUM INTO writes into an empty file; on failure the partial copy
	// is removed, so that nobody restores it.
	fail := func(err error) error {
		os.Remove(path)
		return err
	}
	// On a connection of its own: the readers are query_only, and the
	// writer must stay free for batches while the copy is made.
	src, err := sql.Open("sqlite", s.source)
	if err != nil {
		return fail(fmt.Errorf("open the ledger to back it up: %w", err))
	}
	defer src.Close()
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fail(fmt.Errorf("copy the ledger to %s: %w", path, err))
	}
	if f, err = os.OpenFile(path, os.O_RDWR, 0); err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return fail(fmt.Errorf("sync backup %s: %w", path, err))
	}
	return nil
}
