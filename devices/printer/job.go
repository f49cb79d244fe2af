package printer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tillpoint/tillpoint/devices"
)

// Print sends a job and returns what became of it.
//
// A job whose ID is already done returns the first result with Duplicate
// set and sends nothing. A job waits while the printer is out of paper,
// has its cover open or is offline (health says why), and is sent when it
// is ready again, or fails with ErrNotPrinted when ctx ends first (a retry
// with the same ID is then safe). A printer that does not answer status
// gets the job unconfirmed. A drawer kick older than MaxKickAge, when it is
// about to be sent, is dropped with ErrStaleKick.
func (p *Printer) Print(ctx context.Context, job Job) (Result, error) {
	if job.ID == "" {
		return Result{}, ErrNoJobID
	}
	if job.Kind == JobPrint && len(job.Data) == 0 {
		return Result{}, fmt.Errorf("printer %s: job %s has no data; nothing to print", p.cfg.ID, job.ID)
	}
	if job.Created.IsZero() {
		job.Created = p.cfg.Now()
	}
	p.jobMu.Lock()
	defer p.jobMu.Unlock()
	if p.isClosed() {
		return Result{}, ErrClosed
	}
	if r, ok, err := p.cfg.Jobs.Done(job.ID); err != nil {
		return Result{}, fmt.Errorf("%w: job %s: cannot tell whether it was printed before: %w", ErrNotPrinted, job.ID, err)
	} else if ok {
		r.Duplicate = true
		p.log.Info("duplicate job not printed again", devices.KeyJob, job.ID)
		return r, nil
	}
	res := Result{JobID: job.ID}
	st, err := p.waitReady(ctx, &res)
	if err != nil {
		return res, fmt.Errorf("%w: job %s: %w", ErrNotPrinted, job.ID, err)
	}
	data := job.Data
	if job.Kind == JobDrawerKick {
		if age := p.cfg.Now().Sub(job.Created); age > p.cfg.MaxKickAge {
			p.log.Warn("stale drawer kick dropped", devices.KeyJob, job.ID, "age", age)
			return res, fmt.Errorf("%w (job %s, %v old, limit %v)", ErrStaleKick, job.ID, age.Round(time.Second), p.cfg.MaxKickAge)
		}
		data = DrawerKick(job.Pin)
	}

	p.health.Set(devices.StateBusy, devices.PowerOnline, devices.CodeOK, "Printer: printing")
	c := p.conn
	sent, err := p.send(c, data)
	if err != nil {
		p.lostLocked(err)
		if sent == 0 {
			return res, fmt.Errorf("%w: job %s: %w", ErrNotPrinted, job.ID, err)
		}
		res.Printed = true
		p.rememberLocked(res)
		return res, fmt.Errorf("%w: job %s (%d of %d bytes sent): %w", ErrUncertain, job.ID, sent, len(data), err)
	}
	res.Printed = true
	res.Status = st
	if !st.Known {
		// Mark the end of the job all the same (a printer that cannot
		// answer still parses GS r), but do not wait for an answer.
		if err := writeAll(c, []byte(cmdJobDone), p.cfg.IOTimeout); err != nil {
			p.lostLocked(err)
		} else {
			p.stale = true // it may answer after all
		}
	} else {
		ok, ans, err := p.confirm(c)
		if err != nil {
			// The job is in the printer; the confirmation is what failed.
			p.lostLocked(err)
			p.rememberLocked(res)
			return res, nil
		}
		res.Confirmed = ok
		if ok && ans&0x0c != 0 { // paper ran out during the job
			res.Status.PaperOut = true
		}
	}
	p.rememberLocked(res)
	p.log.Info("job sent", devices.KeyJob, job.ID, "kind", job.Kind.String(), "confirmed", res.Confirmed)
	state, power, code, reason := res.Status.health()
	p.health.Set(state, power, code, reason)
	return res, nil
}

// waitReady connects and polls the status until the printer can print (or
// does not say), reporting why it waits.
func (p *Printer) waitReady(ctx context.Context, res *Result) (Status, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return Status{}, fmt.Errorf("%w (last: %w)", ctx.Err(), lastErr)
			}
			return Status{}, ctx.Err()
		case <-t.C:
		}
		st, err := p.statusLocked(ctx)
		switch {
		case err != nil:
			lastErr = err
		case !st.Known || st.Ready():
			res.Status = st
			return st, nil
		default:
			res.WaitedForPaper = true
			lastErr = nil
		}
		t.Reset(p.cfg.PaperPoll)
	}
}

// send writes data with a deadline per chunk and returns how much went out.
func (p *Printer) send(c Conn, data []byte) (int, error) {
	const chunk = 4096
	sent := 0
	for sent < len(data) {
		end := min(sent+chunk, len(data))
		if err := c.SetWriteDeadline(time.Now().Add(p.cfg.IOTimeout)); err != nil {
			return sent, err
		}
		n, err := c.Write(data[sent:end])
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// confirm sends GS r 1 and waits for its answer, which the printer gives
// once it processed the job. A timeout is not an error: the job stays
// unconfirmed.
func (p *Printer) confirm(c Conn) (bool, byte, error) {
	if err := writeAll(c, []byte(cmdJobDone), p.cfg.IOTimeout); err != nil {
		return false, 0, err
	}
	deadline := time.Now().Add(p.cfg.JobTimeout)
	buf := make([]byte, 16)
	for {
		if err := c.SetReadDeadline(deadline); err != nil {
			return false, 0, err
		}
		n, err := c.Read(buf)
		for _, b := range buf[:n] {
			if isTransmit(b) {
				return true, b, nil
			}
		}
		if err != nil {
			if isTimeout(err) {
				p.stale = true
				return false, 0, nil
			}
			return false, 0, err
		}
	}
}

func (p *Printer) rememberLocked(r Result) {
	if err := p.cfg.Jobs.Record(r); err != nil {
		// The job went out; only the memory of it failed. Say so loudly:
		// a retry of this ID could print it again.
		p.log.Error("job printed but not recorded; a retry may print it twice", devices.KeyJob, r.JobID, devices.KeyError, err)
	}
}

// JobLog remembers the jobs a printer sent, so that a retried job is not
// printed twice. Done reports the result of a job ID already sent; Record
// stores one. Both are called one job at a time.
type JobLog interface {
	Done(id string) (Result, bool, error)
	Record(r Result) error
}

// MemoryJobs is a JobLog in memory that keeps the last n job IDs.
type MemoryJobs struct {
	mu    sync.Mutex
	n     int
	done  map[string]Result
	order []string
}

// NewMemoryJobs returns a MemoryJobs keeping the last n job IDs.
func NewMemoryJobs(n int) *MemoryJobs {
	return &MemoryJobs{n: n, done: make(map[string]Result)}
}

var _ JobLog = (*MemoryJobs)(nil)

// Done reports the result recorded for id.
func (m *MemoryJobs) Done(id string) (Result, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.done[id]
	return r, ok, nil
}

// Record stores r, forgetting the oldest job beyond n.
func (m *MemoryJobs) Record(r Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.done[r.JobID]; ok {
		return nil
	}
	m.done[r.JobID] = r
	m.order = append(m.order, r.JobID)
	for len(m.order) > m.n {
		delete(m.done, m.order[0])
		m.order = m.order[1:]
	}
	return nil
}
