package journal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Link is a hash-chain link: SHA-256(previous link || canonical op bytes).
type Link [sha256.Size]byte

// ChainLink returns the link that follows prev for an op's canonical bytes.
func ChainLink(prev Link, body []byte) Link {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(body)
	var l Link
	h.Sum(l[:0])
	return l
}

// head is where the journal ends: the current epoch, the last seq in it
// (0 when the epoch has no op yet) and the last link of the whole chain.
type head struct {
	epoch uint32
	seq   uint64
	link  Link
}

// writer is the state of the single goroutine that writes the database.
type writer struct {
	db     *sql.DB
	head   head
	stale  bool // head may not match the database (after a failed commit)
	insert *sql.Stmt
	// insertReq stores a request's key with its op (AppendRequest).
	insertReq *sql.Stmt

	sidecarToken string
	sidecarAt    time.Time
	sidecarHead  head
	sidecarDue   bool // a write the sidecar must record (an epoch change)

	// touches are the view changes of the transaction being built, applied
	// to the view cache once it commits.
	touches []viewTouch
}

// touch records a change to the local views that takes effect when the
// current transaction commits.
func (w *writer) touch(t viewTouch) { w.touches = append(w.touches, t) }

const (
	insertOp = `INSERT INTO ops (epoch, seq, id, kind, card, points, offline, wall_time, body, link)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertRequest = "INSERT INTO requests (key, op_id, meta) VALUES (?, ?, ?)"
)

func (w *writer) load(ctx context.Context, db *sql.DB) error {
	w.db = db
	if w.insert == nil {
		stmt, err := db.PrepareContext(ctx, insertOp)
		if err != nil {
			return fmt.Errorf("prepare insert: %w", classify(err))
		}
		w.insert = stmt
	}
	if w.insertReq == nil {
		stmt, err := db.PrepareContext(ctx, insertRequest)
		if err != nil {
			return fmt.Errorf("prepare request insert: %w", classify(err))
		}
		w.insertReq = stmt
	}
	h, err := readHead(ctx, db)
	if err != nil {
		return err
	}
	w.head, w.stale = h, false
	return nil
}

// readHead reads the current epoch and the last op from the database.
func readHead(ctx context.Context, q queryer) (head, error) {
	var h head
	var epoch sql.NullInt64
	if err := q.QueryRowContext(ctx, "SELECT max(epoch) FROM epochs").Scan(&epoch); err != nil {
		return h, fmt.Errorf("read epoch: %w", classify(err))
	}
	h.epoch = uint32(epoch.Int64)
	var opEpoch uint32
	var link []byte
	err := q.QueryRowContext(ctx, "SELECT epoch, seq, link FROM ops ORDER BY pos DESC LIMIT 1").Scan(&opEpoch, &h.seq, &link)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return h, nil
	case err != nil:
		return h, fmt.Errorf("read last op: %w", classify(err))
	case len(link) != len(h.link):
		return h, fmt.Errorf("%w: last op's link is %d bytes", ErrCorrupt, len(link))
	}
	copy(h.link[:], link)
	if opEpoch != h.epoch {
		h.seq = 0
	}
	return h, nil
}

// request is one unit of work for the writer: fn runs inside the batch's
// transaction (under a savepoint when the batch holds several) and may
// update the writer's head; its error goes back to the caller alone.
type request struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx, w *writer) error
	done chan error
}

// write hands fn to the writer goroutine and waits until the transaction
// that ran it has committed (nil) or failed.
func (j *Journal) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx, w *writer) error) error {
	r := &request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	j.mu.RLock()
	if j.closed {
		j.mu.RUnlock()
		return ErrClosed
	}
	select {
	case j.reqs <- r:
	case <-ctx.Done():
		j.mu.RUnlock()
		return ctx.Err()
	}
	j.mu.RUnlock()
	// Once queued, wait for the answer even if ctx ends: the op may be
	// committed, and the caller must not take silence for a refusal.
	return <-r.done
}

// run is the writer goroutine: it takes a request, adds every other one
// already waiting and, when recent batches were larger, briefly waits for
// more (group commit), then commits them in one transaction.
func (j *Journal) run() {
	defer close(j.done)
	batch := make([]*request, 0, j.opts.MaxBatch)
	// expect is how many requests the next batch may gather: the largest
	// recent batch, forgotten after peakMemory without a batch as large.
	expect, peakAt := 1, time.Now()
	var lastCommit time.Duration
	// sidecarTimer writes the sidecar once the interval has passed after
	// a commit it skipped, so that an idle journal's sidecar catches up
	// with its last op too.
	sidecarTimer := time.NewTimer(time.Hour)
	sidecarTimer.Stop()
	defer sidecarTimer.Stop()
	for {
		if j.w.sidecarBehind() {
			sidecarTimer.Reset(max(0, j.opts.SidecarInterval-time.Since(j.w.sidecarAt)))
		}
		select {
		case r := <-j.reqs:
			sidecarTimer.Stop()
			batch = append(batch[:0], r)
		case <-sidecarTimer.C:
			j.writeSidecar(false)
			continue
		case <-j.quit:
			for {
				select {
				case r := <-j.reqs:
					j.commit([]*request{r})
				default:
					j.writeSidecar(true)
					for _, s := range []*sql.Stmt{j.w.insert, j.w.insertReq} {
						if s != nil {
							s.Close()
						}
					}
					return
				}
			}
		}
	fill:
		for len(batch) < j.opts.MaxBatch {
			select {
			case r := <-j.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		timedOut := false
		if len(batch) < expect {
			batch, timedOut = j.awaitStragglers(batch, expect, min(lastCommit/2, maxCommitDelay))
		}
		start := time.Now()
		j.commit(batch)
		lastCommit = time.Since(start)
		switch now := time.Now(); {
		case len(batch) >= expect:
			expect, peakAt = len(batch), now
		case timedOut: // fewer appenders than expected: stop waiting for them soon
			expect, peakAt = max(len(batch), expect/2), now
		case now.Sub(peakAt) > peakMemory:
			expect, peakAt = max(len(batch), expect-1), now
		}
		j.writeSidecar(false)
	}
}

// maxCommitDelay caps how long the writer waits for more requests when it
// expects them (and half the last commit's time caps it further);
// peakMemory is how long it expects as many appenders as it last saw.
const (
	maxCommitDelay = 2 * time.Millisecond
	peakMemory     = 100 * time.Millisecond
)

// awaitStragglers waits up to delay for the batch to reach the size the
// recent batches had. Appenders answered by the last commit need a moment
// to come back with their next op; without the wait the writer commits the
// first one alone and the rest wait a whole commit, halving group commit's
// gain. A single appender never waits: its expected batch is 1.
func (j *Journal) awaitStragglers(batch []*request, expect int, delay time.Duration) (_ []*request, timedOut bool) {
	if delay <= 0 {
		return batch, false
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for len(batch) < expect {
		select {
		case r := <-j.reqs:
			batch = append(batch, r)
		case <-timer.C:
			return batch, true
		case <-j.quit:
			return batch, false
		}
	}
	return batch, false
}

// commit runs a batch in one transaction and answers every request after
// the commit returned. A failed commit fails every request of the batch.
func (j *Journal) commit(batch []*request) {
	ctx := context.Background() // one caller giving up must not abort the others
	w := &j.w
	errs := make([]error, len(batch))
	answer := func() {
		for i, r := range batch {
			r.done <- errs[i]
		}
	}
	failAll := func(err error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		answer()
	}
	if w.stale {
		if err := w.load(ctx, w.db); err != nil {
			failAll(err)
			return
		}
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		failAll(fmt.Errorf("begin: %w", classify(err)))
		return
	}
	saved := w.head
	w.touches = w.touches[:0]
	single := len(batch) == 1
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = err // the caller gave up before its turn: nothing written
			continue
		}
		before, touched := w.head, len(w.touches)
		if !single {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT req"); err != nil {
				tx.Rollback()
				w.head = saved
				failAll(fmt.Errorf("savepoint: %w", classify(err)))
				return
			}
		}
		err := r.fn(ctx, tx, w)
		if err == nil && !single {
			if _, rerr := tx.ExecContext(ctx, "RELEASE req"); rerr != nil {
				err = fmt.Errorf("release savepoint: %w", classify(rerr))
			}
		}
		if err == nil {
			continue
		}
		errs[i] = err
		w.head, w.touches = before, w.touches[:touched]
		if single {
			tx.Rollback()
			answer()
			return
		}
		if rerr := rollbackTo(ctx, tx); rerr != nil {
			tx.Rollback()
			w.head, w.stale = saved, true
			failAll(fmt.Errorf("roll back a failed request: %w", classify(rerr)))
			return
		}
	}
	if j.views != nil {
		j.views.begin()
	}
	err = tx.Commit()
	if j.views != nil {
		j.views.end(w.touches, err == nil)
	}
	if err != nil {
		// The state of the file is uncertain (a failed fsync may leave a
		// complete transaction in the WAL): reload before the next batch.
		w.head, w.stale = saved, true
		err = fmt.Errorf("commit: %w", classify(err))
		j.log.Error("journal commit failed", slog.Any(logError, err))
		failAll(err)
		return
	}
	answer()
}

// Append validates op, fills what the caller left empty (ID, terminal,
// store, wall time, HLC), assigns its epoch, the next gapless seq and its
// chain link, and returns the stored op once the transaction holding it has
// committed. An op whose ID is already stored returns the stored op with
// ErrDuplicateOp. Storage failures return ErrStorageFull, ErrReadOnly,
// ErrCorrupt or ErrIO; the op is then not acknowledged.
func (j *Journal) Append(ctx context.Context, op loyalty.Op) (loyalty.Op, error) {
	return j.append(ctx, op, nil, nil)
}

// Request is a client's request that made an op: its idempotency key and
// the caller's own record of it (Meta, opaque to the journal).
type Request struct {
	Key  string
	Meta []byte
}

// AppendRequest appends op like Append and, in the same transaction, maps
// req.Key to it, so that the key is durable exactly when the op is. A key
// already mapped to another op returns ErrDuplicateRequest and appends
// nothing; look the request up with RequestByKey.
func (j *Journal) AppendRequest(ctx context.Context, op loyalty.Op, req Request) (loyalty.Op, error) {
	if req.Key == "" || len(req.Key) > 1024 {
		return loyalty.Op{}, fmt.Errorf("%w: a request key is 1 to 1024 bytes, got %d", ErrInvalid, len(req.Key))
	}
	if req.Meta == nil {
		req.Meta = []byte{}
	}
	return j.append(ctx, op, nil, &req)
}

// RequestByKey returns the request stored with key and the op it made,
// and false when there is none.
func (j *Journal) RequestByKey(ctx context.Context, key string) (Request, loyalty.Op, bool, error) {
	var meta, id []byte
	err := j.rdb.QueryRowContext(ctx, "SELECT meta, op_id FROM requests WHERE key = ?", key).Scan(&meta, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, loyalty.Op{}, false, nil
	}
	if err != nil {
		return Request{}, loyalty.Op{}, false, fmt.Errorf("read request: %w", classify(err))
	}
	var opID loyalty.OpID
	if len(id) != len(opID) {
		return Request{}, loyalty.Op{}, false, fmt.Errorf("%w: request's op ID is %d bytes", ErrCorrupt, len(id))
	}
	copy(opID[:], id)
	op, ok, err := opByID(ctx, j.rdb, opID)
	if err != nil {
		return Request{}, loyalty.Op{}, false, err
	}
	if !ok {
		return Request{}, loyalty.Op{}, false, fmt.Errorf("%w: request's op %s is missing", ErrCorrupt, opID)
	}
	return Request{Key: key, Meta: meta}, op, true, nil
}

func (j *Journal) append(ctx context.Context, op loyalty.Op, check func(ctx context.Context, tx *sql.Tx, op *loyalty.Op) error, req *Request) (loyalty.Op, error) {
	if err := j.prepare(&op); err != nil {
		return loyalty.Op{}, err
	}
	var stored loyalty.Op
	var buf []byte
	err := j.write(ctx, func(ctx context.Context, tx *sql.Tx, w *writer) error {
		if check != nil {
			// A retry of a stored op is a duplicate, not a second redeem
			// for the policy to count.
			if prev, ok, err := opByID(ctx, tx, op.ID); err != nil {
				return err
			} else if ok {
				stored = prev
				return fmt.Errorf("%w: op %s is epoch %d seq %d", ErrDuplicateOp, op.ID, prev.Epoch, prev.Seq)
			}
			if err := check(ctx, tx, &op); err != nil {
				return err
			}
		}
		if w.head.epoch == 0 {
			return fmt.Errorf("%w: no epoch; the journal was not opened for writing", ErrInvalid)
		}
		op.Epoch, op.Seq = w.head.epoch, w.head.seq+1
		buf = op.AppendCanonical(buf[:0])
		link := ChainLink(w.head.link, buf)
		offline := 0
		if op.Offline {
			offline = 1
		}
		_, err := tx.StmtContext(ctx, w.insert).ExecContext(ctx, op.Epoch, int64(op.Seq), op.ID[:], int64(op.Kind),
			op.Card[:], int64(op.Points), offline, op.WallTime.UnixNano(), buf, link[:])
		if err != nil {
			if isUniqueViolation(err) {
				if prev, ok, ferr := opByID(ctx, tx, op.ID); ferr == nil && ok {
					stored = prev
					return fmt.Errorf("%w: op %s is epoch %d seq %d", ErrDuplicateOp, op.ID, prev.Epoch, prev.Seq)
				}
			}
			return fmt.Errorf("append op %s: %w", op.ID, classify(err))
		}
		if req != nil {
			_, err := tx.StmtContext(ctx, w.insertReq).ExecContext(ctx, req.Key, op.ID[:], req.Meta)
			if err != nil && isUniqueViolation(err) {
				return fmt.Errorf("%w: op %s not appended", ErrDuplicateRequest, op.ID)
			}
			if err != nil {
				return fmt.Errorf("append op %s: store its request: %w", op.ID, classify(err))
			}
		}
		w.head.seq, w.head.link = op.Seq, link
		switch {
		case op.Card.IsZero():
		case op.Kind == loyalty.OpEnroll:
			w.touch(viewTouch{card: op.Card, drop: true}) // the card becomes known
		default:
			w.touch(viewTouch{card: op.Card, points: op.Points})
		}
		stored = op
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrDuplicateOp) {
			return stored, err
		}
		return loyalty.Op{}, err
	}
	return stored, nil
}

// prepare fills the fields the journal owns or may default, then validates.
func (j *Journal) prepare(op *loyalty.Op) error {
	if j.opts.ReadOnly {
		return fmt.Errorf("%w: opened read-only", ErrReadOnly)
	}
	switch {
	case op.Terminal == "":
		op.Terminal = j.terminal
	case op.Terminal != j.terminal:
		return fmt.Errorf("%w: op is for terminal %q, this journal is terminal %q's", ErrInvalid, op.Terminal, j.terminal)
	}
	switch {
	case op.Store == "":
		op.Store = j.store
	case op.Store != j.store:
		return fmt.Errorf("%w: op is for store %q, this journal is store %q's", ErrInvalid, op.Store, j.store)
	}
	if op.WallTime.IsZero() {
		op.WallTime = j.opts.Now()
	}
	// Only nanoseconds since 1970 survive the canonical encoding; keep the
	// returned op equal to the stored one.
	op.WallTime = time.Unix(0, op.WallTime.UnixNano()).UTC()
	if op.HLC == 0 {
		op.HLC = j.hlc.Tick()
	} else {
		j.hlc.Observe(op.HLC)
	}
	if op.ID.IsZero() {
		id, err := loyalty.NewOpID(op.WallTime, rand.Reader)
		if err != nil {
			return err
		}
		op.ID = id
	}
	op.Epoch, op.Seq = 0, 0
	if err := op.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// NewEpoch starts a new epoch: the next op gets seq 1 of it and the chain
// continues. The uplink calls it when the cloud's watermark for this
// terminal is ahead of the journal. It returns the new epoch's number.
func (j *Journal) NewEpoch(ctx context.Context, reason string) (uint32, error) {
	if reason == "" {
		return 0, fmt.Errorf("%w: a new epoch needs a reason", ErrInvalid)
	}
	var epoch uint32
	err := j.write(ctx, func(ctx context.Context, tx *sql.Tx, w *writer) error {
		var err error
		epoch, err = startEpoch(ctx, tx, max(w.head.epoch+1, j.lostEpochFloor()), j.opts.Now(), reason)
		if err != nil {
			return err
		}
		w.head.epoch, w.head.seq = epoch, 0
		w.sidecarDue = true
		return nil
	})
	if err != nil {
		return 0, err
	}
	j.log.Warn("journal started a new epoch", slog.Uint64(logEpoch, uint64(epoch)), slog.String(logReason, reason))
	return epoch, nil
}

func startEpoch(ctx context.Context, e execer, epoch uint32, at time.Time, reason string) (uint32, error) {
	if _, err := e.ExecContext(ctx, "INSERT INTO epochs (epoch, started_at, reason) VALUES (?, ?, ?)", epoch, at.UnixNano(), reason); err != nil {
		return 0, fmt.Errorf("start epoch %d: %w", epoch, classify(err))
	}
	return epoch, nil
}

func rollbackTo(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, "ROLLBACK TO req"); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "RELEASE req")
	return err
}
