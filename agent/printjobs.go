package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tillpoint/tillpoint/devices/printer"
)

// PrintJobs is the printer's durable memory of the jobs it sent
// (devices/printer.JobLog), a table of the agent's database: a receipt whose
// job is retried after the agent restarted is not printed twice. It keeps
// the last Keep jobs (default DefaultPrintJobsKept).
type PrintJobs struct {
	db   *sql.DB
	Keep int
}

// DefaultPrintJobsKept is how many print jobs PrintJobs remembers: weeks
// of receipts at a busy till.
const DefaultPrintJobsKept = 20000

var _ printer.JobLog = (*PrintJobs)(nil)

const printJobsSchema = `
CREATE TABLE IF NOT EXISTS print_jobs (
	n      INTEGER PRIMARY KEY,
	job_id TEXT NOT NULL UNIQUE,
	result BLOB NOT NULL,   -- devices/printer.Result as JSON
	at     INTEGER NOT NULL
) STRICT;`

// printJobsTimeout bounds one read or write of the job log.
const printJobsTimeout = 5 * time.Second

// OpenPrintJobs opens the print job log in the agent's database in
// stateDir (agent.db, synchronous=FULL: a job is recorded durably before
// the next is sent). Close it after the printer.
func OpenPrintJobs(ctx context.Context, stateDir string) (*PrintJobs, error) {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("print job log: create state directory: %w", err)
	}
	path := filepath.Join(stateDir, "agent.db")
	db, err := sql.Open("sqlite", storeDSN(path, "FULL"))
	if err != nil {
		return nil, fmt.Errorf("print job log %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, printJobsSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("print job log %s: %w (check the state directory is writable)", path, err)
	}
	return &PrintJobs{db: db, Keep: DefaultPrintJobsKept}, nil
}

// Done returns the result recorded for the job id, and false when the job
// was never sent.
func (p *PrintJobs) Done(id string) (printer.Result, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), printJobsTimeout)
	defer cancel()
	var b []byte
	err := p.db.QueryRowContext(ctx, "SELECT result FROM print_jobs WHERE job_id = ?", id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return printer.Result{}, false, nil
	}
	if err != nil {
		return printer.Result{}, false, fmt.Errorf("read print job %s: %w", id, err)
	}
	var r printer.Result
	if err := json.Unmarshal(b, &r); err != nil {
		return printer.Result{}, false, fmt.Errorf("read print job %s: %w", id, err)
	}
	return r, true, nil
}

// Record stores a sent job (the first record of an ID wins) and forgets
// the oldest beyond Keep.
func (p *PrintJobs) Record(r printer.Result) error {
	ctx, cancel := context.WithTimeout(context.Background(), printJobsTimeout)
	defer cancel()
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("record print job %s: %w", r.JobID, err)
	}
	if _, err := p.db.ExecContext(ctx, "INSERT INTO print_jobs (job_id, result, at) VALUES (?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
		r.JobID, b, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("record print job %s: %w", r.JobID, err)
	}
	if keep := p.Keep; keep > 0 {
		if _, err := p.db.ExecContext(ctx, "DELETE FROM print_jobs WHERE n <= (SELECT max(n) FROM print_jobs) - ?", keep); err != nil {
			return fmt.Errorf("forget old print jobs: %w", err)
		}
	}
	return nil
}

// Close closes the log's database handle.
func (p *PrintJobs) Close() error { return p.db.Close() }
