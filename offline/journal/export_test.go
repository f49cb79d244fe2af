package journal

import (
	"context"
	"database/sql"
	"fmt"
)

// LimitPages caps the database at its current size plus extra pages with
// PRAGMA max_page_count on the writer's connection: SQLite then fails
// writes that need more with SQLITE_FULL, as on a full disk.
func LimitPages(ctx context.Context, j *Journal, extra int) error {
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, _ *writer) error {
		var n int
		if err := tx.QueryRowContext(ctx, "PRAGMA page_count").Scan(&n); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", n+extra))
		return err
	})
}

// ForgetSnapshotCovers makes every stored snapshot a legacy one, as the
// journal of a release before migration 0003 stored it: covers NULL.
func ForgetSnapshotCovers(ctx context.Context, j *Journal) error {
	return j.write(ctx, func(ctx context.Context, tx *sql.Tx, w *writer) error {
		w.touch(viewTouch{all: true})
		_, err := tx.ExecContext(ctx, "UPDATE snapshots SET covers = NULL")
		return err
	})
}
