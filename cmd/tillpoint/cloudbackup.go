package main

import (
	"context"
	"fmt"
	"os"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
)

const backupHelp = `
Writes a consistent copy of a SQLite ledger to a new file (mode 0600)
while the cloud keeps serving; it never overwrites a file. Back up the
cloud's signing key and card key (cloud.key and card.key beside the
database by default) once, apart from the ledger.

To restore: stop the cloud, put the copy where --db points (removing the
old -wal and -shm files beside it), and start it with the same keys. The
tills send again what the copy lacks: their next batch gets the cloud's
older watermark, and they re-seal from there, since their journals keep
every op. Enrollments, revocations, rules and gossip keys made after the
copy are lost, and must be made again.

A PostgreSQL ledger is backed up with PostgreSQL's tools (pg_dump, or
continuous archiving), and restores the same way.
`

func (m *Main) runCloudBackup(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "cloud backup", "cloud backup --to FILE [--db sqlite:PATH]", backupHelp)
	db := fs.String("db", defaultCloudDB, "the ledger database: sqlite:PATH")
	to := fs.String("to", "", "the backup file to create")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return usageError("need --to FILE, a file that does not exist yet")
	}
	if sqlstore.DialectOf(*db) == sqlstore.Postgres {
		return usageError("--db %s: back up a PostgreSQL ledger with pg_dump or continuous archiving", redactDSN(*db))
	}
	ledger, err := openExistingLedger(ctx, *db)
	if err != nil {
		return err
	}
	defer ledger.Close()
	if err := ledger.BackupTo(ctx, *to); err != nil {
		return err
	}
	st, err := os.Stat(*to)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "backed up the ledger to %s (%d bytes)\n", *to, st.Size())
	return nil
}
