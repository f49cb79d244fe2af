package uplink

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// result is the outcome of one round.
type result struct {
	// progress: a batch was acknowledged or the cloud told us where it
	// stands; another round may follow at once.
	progress bool
	// wait: nothing to send before this much time (a partial batch ageing).
	wait       time.Duration
	err        error
	retryAfter time.Duration
}

// step runs one round: resend the oldest sealed batch, or cut, seal,
// store and send a new one.
func (u *Uplink) step(ctx context.Context, force bool) result {
	u.round.Lock()
	defer u.round.Unlock()
	r := u.stepLocked(ctx, force)
	if !r.progress {
		u.refreshBacklog(ctx) // an ack refreshes it; idle and failed rounds here
	}
	return r
}

func (u *Uplink) stepLocked(ctx context.Context, force bool) result {
	var outbox []journal.SealedBatch
	u.mu.Lock()
	known := u.outboxEmpty
	u.mu.Unlock()
	if !known {
		var err error
		if outbox, err = u.j.Sealed(ctx); err != nil {
			return result{err: fmt.Errorf("read outbox: %w", err)}
		}
	}
	var sb journal.SealedBatch
	if len(outbox) > 0 {
		sb = outbox[0]
		last := len(outbox) == 1
		if sb.FirstSeq == 1 {
			probe, ok, err := u.probeAhead(ctx, sb.Epoch)
			if err != nil {
				return result{err: err}
			}
			if ok {
				sb, last = probe, false
			}
		}
		u.mu.Lock()
		u.lastOfOutbox = last
		u.mu.Unlock()
	} else {
		var wait time.Duration
		var ok bool
		var err error
		sb, wait, ok, err = u.cut(ctx, force)
		if err != nil {
			return result{err: err}
		}
		if !ok {
			return result{wait: wait}
		}
	}
	r := u.send(ctx, sb)
	u.mu.Lock()
	u.idleAt = u.cfg.Now().Add(u.cfg.IdleProbe)
	u.mu.Unlock()
	if r.err != nil {
		// The cloud may come back restored from a backup that lacks the
		// old epoch's end: probe again before the new epoch's first batch.
		u.mu.Lock()
		u.crossed = position{}
		u.mu.Unlock()
	}
	return r
}

// cut reads the ops after the resume point and, if a batch is due, seals
// it and stores it in the outbox.
func (u *Uplink) cut(ctx context.Context, force bool) (journal.SealedBatch, time.Duration, bool, error) {
	u.mu.Lock()
	from, held := u.from, u.held
	limit := u.cfg.MaxOps
	if u.shrink > 0 && u.cfg.Now().Before(u.shrinkUntil) {
		limit = u.shrink
	}
	u.mu.Unlock()
	epoch, seq := from.epoch, from.seq
	if !from.ok {
		var err error
		if epoch, seq, err = u.resumePoint(ctx); err != nil {
			return journal.SealedBatch{}, 0, false, err
		}
	}

	ops, err := u.j.OpsAfter(ctx, epoch, seq, limit+1)
	if err != nil {
		return journal.SealedBatch{}, 0, false, fmt.Errorf("read unsent ops: %w", err)
	}
	if len(ops) == 0 {
		// Idle: the cloud may be restored before the next epoch's first
		// batch, however long from now; that batch goes after a probe
		// again, even if an idle probe of the old epoch's end was answered.
		u.mu.Lock()
		u.crossed = position{}
		u.mu.Unlock()
		return u.idleProbe(ctx)
	}
	probe, err := u.probeBeforeEpoch(ctx, epoch, seq, ops[0].Epoch)
	if err != nil {
		return journal.SealedBatch{}, 0, false, err
	}
	if probe != nil {
		ops = probe
	}
	// One epoch per batch, at most limit ops and MaxBytes of encoding.
	full := probe != nil
	n, size := 0, 0
	var buf []byte
	for n < len(ops) {
		if ops[n].Epoch != ops[0].Epoch || n == limit ||
			held.ok && ops[n].Epoch == held.epoch && ops[0].Seq <= held.seq && ops[n].Seq > held.seq {
			full = true
			break
		}
		buf = ops[n].AppendCanonical(buf[:0])
		if n > 0 && size+len(buf) > u.cfg.MaxBytes {
			full = true
			break
		}
		size += len(buf)
		n++
	}
	ops = ops[:n]
	first := ops[0].Seq

	now := u.cfg.Now()
	u.mu.Lock()
	if u.pendingFirst.epoch != ops[0].Epoch || u.pendingFirst.seq != first {
		u.pendingFirst.epoch, u.pendingFirst.seq, u.pendingSince = ops[0].Epoch, first, now
	}
	age := now.Sub(u.pendingSince)
	u.mu.Unlock()
	if !full && !force && age < u.cfg.MaxAge {
		return journal.SealedBatch{}, u.cfg.MaxAge - age, false, nil
	}
	prev := probePrev()
	if probe == nil {
		if prev, err = u.prevHash(ctx, ops[0].Epoch, first); err != nil {
			return journal.SealedBatch{}, 0, false, err
		}
	}

	u.mu.Lock()
	u.outboxEmpty, u.lastOfOutbox = false, true
	u.mu.Unlock()
	sb, err := u.seal(ctx, ops, prev)
	if err != nil {
		return journal.SealedBatch{}, 0, false, err
	}
	return sb, 0, true, nil
}

// seal seals ops, of one epoch and in order, into a batch naming prev and
// stores its bytes in the outbox before they are first sent. The caller
// has marked the outbox as not empty.
func (u *Uplink) seal(ctx context.Context, ops []loyalty.Op, prev batch.Hash) (journal.SealedBatch, error) {
	var rules uint32
	if u.cfg.RulesVersion != nil {
		rules = u.cfg.RulesVersion()
	}
	first, last := ops[0].Seq, ops[len(ops)-1].Seq
	b := &batch.Batch{Terminal: u.cfg.Signer.Name(), Epoch: ops[0].Epoch, First: first, Last: last, Prev: prev, RulesVersion: rules, Ops: ops}
	s, err := u.cfg.Signer.SealBatch(b)
	if err != nil {
		return journal.SealedBatch{}, fmt.Errorf("seal ops %d/%d..%d: %w", b.Epoch, first, last, err)
	}
	if err := u.j.PutSealed(ctx, b.Epoch, first, last, s.Bytes); err != nil {
		return journal.SealedBatch{}, fmt.Errorf("store sealed batch %d/%d..%d: %w", b.Epoch, first, last, err)
	}
	u.log.Debug("sealed", slog.Uint64(logEpoch, uint64(b.Epoch)), slog.Uint64(logFirst, first), slog.Uint64(logLast, last), slog.String(logBatch, s.Hash.Short()))
	return journal.SealedBatch{Epoch: b.Epoch, FirstSeq: first, LastSeq: last, Payload: s.Bytes}, nil
}

// resumePoint is where batches are cut from after a start: the point a
// resend of the journal reached (see resendAll), or else the journal's
// acknowledgement watermark.
func (u *Uplink) resumePoint(ctx context.Context) (uint32, uint64, error) {
	epoch, seq, resending, err := u.j.Resending(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read the resend point: %w", err)
	}
	if resending {
		return epoch, seq, nil
	}
	if epoch, seq, err = u.j.Acked(ctx); err != nil {
		return 0, 0, fmt.Errorf("read acknowledgement watermark: %w", err)
	}
	return epoch, seq, nil
}

// probeBeforeEpoch returns the op at (epoch, seq), the last one the cloud
// acknowledged, when the next op is of a later epoch: before the first
// batch of a new epoch it goes again, alone, until the cloud acknowledges
// it (see isProbe and crossed), also when that batch was sealed before
// (see probeAhead), unless an ack of this process showed it held there
// with no idle round and no failed send since. The cloud may have lost the old epoch's end since it
// acknowledged it (restored from a backup), and nothing sent in the new
// epoch would tell. The probe names probePrev, so the cloud never applies
// it: a replay confirms the end; a refusal (a gap ack, a batch_conflict)
// names the cloud's watermark, from which the uplink sends again, and at
// watermark 0 shows that the cloud lost the whole epoch (see lostEpoch).
func (u *Uplink) probeBeforeEpoch(ctx context.Context, epoch uint32, seq uint64, next uint32) ([]loyalty.Op, error) {
	u.mu.Lock()
	due := seq > 0 && next != epoch && u.crossed != position{epoch, seq, true}
	u.mu.Unlock()
	if !due {
		return nil, nil
	}
	return u.probeOp(ctx, epoch, seq)
}

// probeOp returns the op at (epoch, seq), alone, or none when the journal
// holds none there.
func (u *Uplink) probeOp(ctx context.Context, epoch uint32, seq uint64) ([]loyalty.Op, error) {
	ops, err := u.j.OpsAfter(ctx, epoch, seq-1, 1)
	if err != nil {
		return nil, fmt.Errorf("read the last op of epoch %d: %w", epoch, err)
	}
	if len(ops) != 1 || ops[0].Epoch != epoch || ops[0].Seq != seq {
		return nil, nil
	}
	return ops, nil
}

// idleProbe seals the probe (see probeBeforeEpoch) of the last op the
// cloud acknowledged when nothing is left to send and IdleProbe has passed
// since the uplink's last post, or none yet in this process. A cloud
// restored from a backup that lacks acknowledged ops shows it only in its
// answer to a batch, and an idle till sends none: the probe's replay
// confirms that the cloud holds the op; a refusal names the cloud's
// watermark and has the uplink send again from there, as for any probe
// (and from the journal's start when the cloud lost the op's whole epoch,
// be it older than the journal's head epoch). Its answer, like any
// probe's, ends no backoff. Otherwise it returns how long until the next
// probe is due (0 when none is).
func (u *Uplink) idleProbe(ctx context.Context) (journal.SealedBatch, time.Duration, bool, error) {
	if u.cfg.IdleProbe <= 0 {
		return journal.SealedBatch{}, 0, false, nil
	}
	now := u.cfg.Now()
	u.mu.Lock()
	wait := u.idleAt.Sub(now)
	u.mu.Unlock()
	if wait > 0 {
		return journal.SealedBatch{}, wait, false, nil
	}
	epoch, seq, err := u.j.Acked(ctx)
	if err != nil {
		return journal.SealedBatch{}, 0, false, fmt.Errorf("read acknowledgement watermark: %w", err)
	}
	var ops []loyalty.Op
	if seq > 0 {
		if ops, err = u.probeOp(ctx, epoch, seq); err != nil {
			return journal.SealedBatch{}, 0, false, err
		}
	}
	if ops == nil {
		// Nothing acknowledged (nothing the cloud could have lost): look
		// again after IdleProbe.
		u.mu.Lock()
		u.idleAt = now.Add(u.cfg.IdleProbe)
		u.mu.Unlock()
		return journal.SealedBatch{}, u.cfg.IdleProbe, false, nil
	}
	u.mu.Lock()
	u.outboxEmpty, u.lastOfOutbox = false, true
	u.mu.Unlock()
	u.log.Debug("idle: probing the last acknowledged op", slog.Uint64(logEpoch, uint64(epoch)), slog.Uint64(logSeq, seq))
	sb, err := u.seal(ctx, ops, probePrev())
	if err != nil {
		return journal.SealedBatch{}, 0, false, err
	}
	return sb, 0, true, nil
}

// probeAhead seals the probe (see probeBeforeEpoch) ahead of the first
// batch of epoch, about to be sent from the outbox, when the cloud has
// not answered it in this process since the last failed send: the batch
// was sealed before a failed post or a restart, and the cloud may have
// been restored from a backup since. The probe sorts ahead of the batch
// in the outbox, so it goes first after a restart too. ok is false when
// no probe is due.
func (u *Uplink) probeAhead(ctx context.Context, epoch uint32) (journal.SealedBatch, bool, error) {
	e, seq, err := u.resumePoint(ctx)
	if err != nil || e >= epoch {
		return journal.SealedBatch{}, false, err
	}
	ops, err := u.probeBeforeEpoch(ctx, e, seq, epoch)
	if err != nil || ops == nil {
		return journal.SealedBatch{}, false, err
	}
	sb, err := u.seal(ctx, ops, probePrev())
	return sb, err == nil, err
}

// probePrev is the previous hash a probe names: no batch hashes to it, so
// no cloud applies a probe, nor a resend of its bytes after a lost answer
// (that answer could not tell a cloud that held the op from one that
// lacked it). Holding the op, the cloud compares it and replays it.
func probePrev() batch.Hash {
	var h batch.Hash
	for i := range h {
		h[i] = 0xff
	}
	return h
}

// isProbe reports whether sb is a probe (see probeBeforeEpoch): one op
// naming probePrev. It reads the sealed bytes, so a probe sealed before a
// restart is known as one after it.
func (u *Uplink) isProbe(sb journal.SealedBatch) bool {
	if sb.FirstSeq != sb.LastSeq {
		return false
	}
	b, _, err := batch.OpenBatch(sb.Payload, u.cfg.Signer.Program(), u.cfg.Signer.Public())
	return err == nil && b.Prev == probePrev()
}

// prevHash returns the hash of the batch of epoch that ended at first-1,
// the previous hash of a batch starting at first: the zero hash for an
// epoch's first batch, else what the cloud's last ack named, kept in the
// journal across restarts (Journal.MarkAckedChain). When neither knows it
// (a journal from before the chain was kept, or an ack without it) the
// batch goes out with the zero hash: the cloud refuses it with a
// batch_conflict naming the hash, and positionHint re-seals with it.
func (u *Uplink) prevHash(ctx context.Context, epoch uint32, first uint64) (batch.Hash, error) {
	if first == 1 {
		return batch.Hash{}, nil
	}
	u.mu.Lock()
	c := u.chain
	u.mu.Unlock()
	if c.ok && c.epoch == epoch && c.seq == first-1 {
		return c.hash, nil
	}
	e, seq, h, err := u.j.Chain(ctx)
	if err != nil {
		return batch.Hash{}, fmt.Errorf("read the last batch's hash: %w", err)
	}
	var hash batch.Hash
	if e != epoch || seq != first-1 || len(h) != len(hash) {
		u.log.Warn("the previous batch's hash is unknown; the cloud will name it",
			slog.Uint64(logEpoch, uint64(epoch)), slog.Uint64(logFirst, first))
		return batch.Hash{}, nil
	}
	copy(hash[:], h)
	u.mu.Lock()
	u.setChain(epoch, seq, hash)
	u.mu.Unlock()
	return hash, nil
}

// markAcked records a signed acknowledgement up to (epoch, watermark) with
// its snapshots and, when the ack names it, the hash of the batch that
// ended there.
func (u *Uplink) markAcked(ctx context.Context, epoch uint32, watermark uint64, last batch.Hash, snaps ...loyalty.Snapshot) error {
	if last.IsZero() {
		return u.j.MarkAcked(ctx, epoch, watermark, snaps...)
	}
	return u.j.MarkAckedChain(ctx, epoch, watermark, last[:], snaps...)
}

// setChain notes the hash of the batch of epoch that ended at seq; a zero
// hash is known only for seq 0 (no batch yet). The caller holds u.mu.
func (u *Uplink) setChain(epoch uint32, seq uint64, hash batch.Hash) {
	u.chain.epoch, u.chain.seq, u.chain.hash, u.chain.ok = epoch, seq, hash, seq == 0 || !hash.IsZero()
}

// shrinkFor is how long batches stay at half the size a 413 refused
// before the uplink tries MaxOps again: a body limit that stays costs one
// refused post in that time, one that was passing (a proxy's, since
// raised) no more than that time of smaller batches.
const shrinkFor = 10 * time.Minute

// errRetry marks a failure that a resend of the same bytes may cure.
var errRetry = errors.New("will resend")

// send posts one sealed batch and acts on the answer.
func (u *Uplink) send(ctx context.Context, sb journal.SealedBatch) result {
	h, err := batch.HashOf(sb.Payload)
	if err != nil {
		// Our own outbox holds bytes we cannot read: drop them, re-seal.
		u.log.Error("dropping unreadable sealed batch", slog.Uint64(logEpoch, uint64(sb.Epoch)), slog.Uint64(logFirst, sb.FirstSeq), slog.String(logError, err.Error()))
		if derr := u.j.DeleteSealed(ctx, sb.Epoch, sb.FirstSeq); derr != nil {
			return result{err: fmt.Errorf("drop unreadable sealed batch: %w", derr)}
		}
		return result{progress: true}
	}
	rctx, cancel := context.WithTimeout(ctx, u.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u.endpoint, bytes.NewReader(sb.Payload))
	if err != nil {
		return result{err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", batch.ContentType)
	req.Header.Set("Accept", batch.ContentType)
	resp, err := u.cfg.Client.Do(req)
	if err != nil {
		return result{err: fmt.Errorf("post batch %d/%d..%d: %w (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, err, errRetry)}
	}
	defer resp.Body.Close()
	body, err := batch.ReadResponse(resp.Body, batch.MaxAckBytes)
	if err != nil {
		return result{err: fmt.Errorf("batch %d/%d..%d: read answer (HTTP %d): %w (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, resp.StatusCode, err, errRetry)}
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return u.acked(ctx, sb, h, body)
	case http.StatusConflict:
		return u.gap(ctx, sb, body)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return result{err: fmt.Errorf("batch %d/%d..%d: the cloud asks to retry later (HTTP %d: %s) (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, resp.StatusCode, problem(body), errRetry),
			retryAfter: retryAfter(resp.Header.Get("Retry-After"), u.cfg.Now())}
	case http.StatusRequestEntityTooLarge:
		// Refused before it was read: nothing was applied. Cut smaller.
		if err := u.j.DeleteSealed(ctx, sb.Epoch, sb.FirstSeq); err != nil {
			return result{err: fmt.Errorf("drop oversized sealed batch: %w", err)}
		}
		u.mu.Lock()
		if n := int(sb.LastSeq - sb.FirstSeq + 1); u.shrink == 0 || n <= u.shrink {
			u.shrink = max(1, n/2)
		} // else MaxOps tried again after shrinkFor: back to the size that fitted
		u.shrinkUntil = u.cfg.Now().Add(shrinkFor)
		u.mu.Unlock()
		return result{err: fmt.Errorf("batch %d/%d..%d: too large for the cloud (HTTP 413); cutting smaller batches (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, errRetry)}
	}
	return result{err: fmt.Errorf("batch %d/%d..%d: cloud answered HTTP %d: %s", sb.Epoch, sb.FirstSeq, sb.LastSeq, resp.StatusCode, problem(body))}
}

// acked handles a 200 answer: a signed ack for exactly this batch.
func (u *Uplink) acked(ctx context.Context, sb journal.SealedBatch, h batch.Hash, body []byte) result {
	a, err := batch.OpenAck(body, u.cfg.Signer.Program(), u.cfg.CloudKey)
	if err != nil {
		return result{err: fmt.Errorf("batch %d/%d..%d: ack refused: %w (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, err, errRetry)}
	}
	switch {
	case a.Terminal != u.cfg.Signer.Name() || a.Epoch != sb.Epoch || a.BatchHash != h:
		return result{err: fmt.Errorf("batch %d/%d..%d: the ack is for another batch (%s %d, %s) (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, a.Terminal, a.Epoch, a.BatchHash.Short(), errRetry)}
	case a.Status != batch.AckApplied && a.Status != batch.AckDuplicate:
		return result{err: fmt.Errorf("batch %d/%d..%d: an HTTP 200 with a %s ack (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, a.Status, errRetry)}
	case a.Watermark < sb.LastSeq:
		return result{err: fmt.Errorf("batch %d/%d..%d: acked only up to %d (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, a.Watermark, errRetry)}
	}
	// The ack proves this batch's ops, no more: the cloud may hold the
	// epoch further, with ops this journal sent before (a lost ack) or
	// with other ops (a journal restored from a backup, a terminal ID used
	// twice). The next batches are cut to end at its watermark and
	// compared op by op there. Its snapshots then hold what the cloud
	// holds, which this journal cannot place: they are left out, and the
	// acks of the batches up to the watermark bring them. So are a
	// probe's: the cloud may hold the new epoch's ops beyond it.
	probe, idle := u.isProbe(sb), false
	if probe {
		// Nothing to send after the probe's op: the probe is all there is,
		// and its answer is the link working (see below).
		behind, err := u.j.OpsAfter(ctx, sb.Epoch, sb.LastSeq, 1)
		if err != nil {
			return result{err: fmt.Errorf("read the ops after the probe: %w", err)}
		}
		idle = len(behind) == 0
	}
	proven, last, snaps := a.Watermark, a.LastHash, a.Snapshots
	if probe {
		snaps = nil
	}
	if a.Watermark > sb.LastSeq {
		proven, last, snaps = sb.LastSeq, h, nil
		if err := u.behind(ctx, a.Epoch, a.Watermark); err != nil {
			return result{err: err}
		}
	}
	if err := u.markAcked(ctx, a.Epoch, proven, last, snaps...); err != nil {
		if !errors.Is(err, journal.ErrInvalid) || len(snaps) == 0 {
			return result{err: fmt.Errorf("record acknowledgement %d/%d: %w", a.Epoch, proven, err)}
		}
		// A snapshot the journal cannot store must not hold back the
		// acknowledgement of the ops: record it without them.
		u.log.Error("the ack's member snapshots cannot be stored", slog.String(logError, err.Error()))
		if err := u.markAcked(ctx, a.Epoch, proven, last); err != nil {
			return result{err: fmt.Errorf("record acknowledgement %d/%d: %w", a.Epoch, proven, err)}
		}
	}
	applied, dup, rejected := u.outcomes(a)
	now := u.cfg.Now()
	u.mu.Lock()
	if probe {
		if a.Status == batch.AckApplied {
			// Applied despite probePrev (a cloud that does not check
			// the chain): it did not hold the old epoch's last op, which
			// it had acknowledged, so it lost the epoch (restored from a
			// backup), and maybe more. Send the journal again.
			u.mu.Unlock()
			return u.resendAll(ctx, sb.Epoch, sb.FirstSeq)
		}
	}
	// The cloud holds (a.Epoch, proven) now, as a probe's replay would
	// say: a next epoch's first batch cut before an idle round or a
	// failed send needs no probe (see probeBeforeEpoch).
	u.crossed = position{a.Epoch, proven, true}
	u.setChain(a.Epoch, proven, last)
	u.from, u.fromRefusal = position{a.Epoch, proven, true}, false
	u.held = position{a.Epoch, a.Watermark, a.Watermark > proven}
	// The uplink is the outbox's only writer: acking the last batch in it
	// empties it, and the next round need not read it.
	u.outboxEmpty = u.lastOfOutbox
	// A probe's answer, a replay, says the cloud is up, not that the
	// batch behind it gets through: after a failure only that batch's
	// ack ends the backoff and brings the uplink back online. An idle
	// probe has none behind it: its answer is the link working.
	if !probe || u.failures == 0 || idle && u.lastOfOutbox {
		u.failures = 0
		u.state.Online = true
		u.state.LastSuccess = now
		u.state.NextAttempt = time.Time{}
	}
	u.state.Sent++
	u.state.Applied += applied
	u.state.Duplicates += dup
	u.state.Rejected += rejected
	u.state.RulesVersion = a.RulesVersion
	u.state.AckedEpoch, u.state.AckedSeq = a.Epoch, proven
	due := now.Sub(u.backlogAt) >= backlogEvery
	u.mu.Unlock()
	u.log.Debug("acknowledged", slog.Uint64(logEpoch, uint64(a.Epoch)), slog.Uint64(logFirst, sb.FirstSeq), slog.Uint64(logLast, sb.LastSeq),
		slog.Uint64(logWater, a.Watermark), slog.String(logStatus, a.Status.String()))
	if due {
		u.refreshBacklog(ctx) // during a catch-up at most once a second: it counts the backlog
	}
	return result{progress: true}
}

// outcomes counts the ops of an ack by outcome and logs those the cloud
// rejected. A replay (a duplicate ack) applied nothing: its results repeat
// what the first apply did, so its ops count as duplicates, logged then.
func (u *Uplink) outcomes(a *batch.Ack) (applied, dup, rejected int64) {
	if a.Status == batch.AckDuplicate {
		return 0, int64(len(a.Results)), 0
	}
	for _, r := range a.Results {
		switch r.Outcome {
		case batch.Applied:
			applied++
		case batch.Duplicate:
			dup++
		case batch.Rejected:
			rejected++
			u.log.Error("cloud rejected op", slog.String(logOp, r.ID.String()), slog.Uint64(logSeq, r.Seq), slog.String(logReason, r.Reason.String()))
		}
	}
	return applied, dup, rejected
}

// gap handles a 409 answer: a signed gap ack that says where the cloud
// stands in this epoch. The sealed batches from this epoch on no longer
// follow the cloud: drop them and resume from its watermark, chained to
// its hash.
func (u *Uplink) gap(ctx context.Context, sb journal.SealedBatch, body []byte) result {
	a, err := batch.OpenAck(body, u.cfg.Signer.Program(), u.cfg.CloudKey)
	if err != nil {
		if r, ok := u.positionHint(ctx, sb, body); ok {
			return r
		}
		return result{err: fmt.Errorf("batch %d/%d..%d: HTTP 409 without a valid gap ack: %w (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, err, errRetry)}
	}
	if a.Status != batch.AckGap || a.Terminal != u.cfg.Signer.Name() || a.Epoch != sb.Epoch {
		return result{err: fmt.Errorf("batch %d/%d..%d: HTTP 409 with a %s ack for %s epoch %d (%w)", sb.Epoch, sb.FirstSeq, sb.LastSeq, a.Status, a.Terminal, a.Epoch, errRetry)}
	}
	lost, err := u.lostEpoch(ctx, a.Epoch, a.Watermark)
	if err != nil {
		return result{err: err}
	}
	if lost {
		// Restored from a backup older than the epoch: it may lack ops of
		// earlier epochs too, which its gap ack cannot name.
		return u.resendAll(ctx, a.Epoch, sb.FirstSeq)
	}
	if err := u.dropSealed(ctx, a.Epoch); err != nil {
		return result{err: err}
	}
	if a.Watermark > 0 {
		// Below what the journal holds acknowledged, the cloud lost the
		// rest (restored from a backup): the journal keeps that, so that
		// no feed page of the restored cloud hides it from the view.
		if err := u.j.ResendFrom(ctx, a.Epoch, a.Watermark); err != nil {
			return result{err: fmt.Errorf("record that the cloud lost %d/%d..: %w", a.Epoch, a.Watermark+1, err)}
		}
		if err := u.markAcked(ctx, a.Epoch, a.Watermark, a.LastHash); err != nil {
			if !errors.Is(err, journal.ErrAckAhead) {
				return result{err: fmt.Errorf("record acknowledgement %d/%d: %w", a.Epoch, a.Watermark, err)}
			}
			if err := u.behind(ctx, a.Epoch, a.Watermark); err != nil {
				return result{err: err}
			}
		}
	}
	if err := u.refused(sb, a.Watermark); err != nil {
		return result{err: err}
	}
	u.mu.Lock()
	u.setChain(a.Epoch, a.Watermark, a.LastHash)
	// Re-sealed without the hash the chain needs (an ack that left it
	// out), the batch may be refused once more, naming it: not a loop.
	u.resumeAfterRefusal(position{a.Epoch, a.Watermark, true}, a.Watermark == 0 || !a.LastHash.IsZero())
	u.failures = 0
	u.state.Online = true
	u.state.Gaps++
	u.state.RulesVersion = a.RulesVersion
	u.mu.Unlock()
	u.log.Info("cloud is elsewhere in the epoch; re-sealing from its watermark",
		slog.Uint64(logEpoch, uint64(a.Epoch)), slog.Uint64(logFirst, sb.FirstSeq), slog.Uint64(logWater, a.Watermark))
	return result{progress: true}
}

// resendAll has the journal sent again from its start, after the cloud
// showed it lost an epoch it had acknowledged ops of: the cloud compares
// what it holds op by op and applies the rest. The journal keeps the
// resend point (Journal.ResendAll), so a restart goes on with the resend.
func (u *Uplink) resendAll(ctx context.Context, epoch uint32, first uint64) result {
	if err := u.j.ResendAll(ctx); err != nil {
		return result{err: fmt.Errorf("the cloud lost epoch %d; record that the journal goes again from its start: %w", epoch, err)}
	}
	u.mu.Lock()
	u.resumeAfterRefusal(position{ok: true}, false)
	u.held = position{}
	u.outboxEmpty = true
	u.failures = 0
	u.state.Online = true
	u.state.Gaps++
	u.mu.Unlock()
	u.log.Error("the cloud lost an epoch it had acknowledged (restored from a backup?); sending the journal again from its start",
		slog.Uint64(logEpoch, uint64(epoch)), slog.Uint64(logFirst, first))
	u.refreshBacklog(ctx)
	return result{progress: true}
}

// lostEpoch reports whether a signed gap ack at watermark for epoch shows
// that the cloud lost the whole epoch after acknowledging ops of it to
// this journal. (Holding part of the epoch, it holds every earlier epoch
// as far as this journal goes: the journal sends its epochs in order.)
func (u *Uplink) lostEpoch(ctx context.Context, epoch uint32, watermark uint64) (bool, error) {
	if watermark > 0 {
		return false, nil
	}
	ae, as, err := u.j.Acked(ctx)
	if err != nil {
		return false, fmt.Errorf("read acknowledgement watermark: %w", err)
	}
	return ae > epoch || ae == epoch && as > 0, nil
}

// resumeAfterRefusal has the next batch cut from p, as a refusal (a gap
// ack, a hint, a lost epoch) says. chained reports that the batch re-sealed
// there carries the previous hash the chain needs, so that the cloud
// refusing it again would be a loop (see refused). The caller holds u.mu.
func (u *Uplink) resumeAfterRefusal(p position, chained bool) {
	u.from, u.fromRefusal = p, chained
}

// refused guards against a cloud that refuses, again and again, a batch
// that already starts right after the watermark it names: re-sealing would
// loop, so that is a failure (with its backoff), not progress.
func (u *Uplink) refused(sb journal.SealedBatch, watermark uint64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if sb.FirstSeq == watermark+1 && u.fromRefusal && u.from == (position{sb.Epoch, watermark, true}) {
		return fmt.Errorf("batch %d/%d..%d: the cloud refuses it though it follows its watermark %d; check the cloud's log (%w)",
			sb.Epoch, sb.FirstSeq, sb.LastSeq, watermark, errRetry)
	}
	return nil
}

// conflictProblem is the part of the cloud's RFC 9457 problem document for
// a 409 that the uplink reads.
type conflictProblem struct {
	Code      string  `json:"code"`
	Detail    string  `json:"detail"`
	Epoch     *uint32 `json:"epoch"`
	Watermark *uint64 `json:"watermark"`
	LastHash  string  `json:"last_hash"`
}

// positionHint handles a 409 problem document (unsigned) for a batch that
// reaches back below the cloud's watermark, does not chain to its last
// batch, or lies within it but differs from the ops it holds. Being
// unsigned it moves nothing in the journal, and it never moves the resume
// point past what the cloud's acks proved:
//   - sequence_rewind: the cloud holds the epoch further than this journal
//     proved (its ack was lost, or the journal was restored): the batches
//     are cut again from the proven point, ending at the cloud's
//     watermark, so that the cloud compares them op by op;
//   - sequence_gap, batch_conflict: the cloud stands at or below the
//     proven point: re-seal from its watermark with the previous hash named
//     (a wrong one only gets the batch refused again: the cloud checks the
//     new batch's position and chain itself); at watermark 0 for an epoch
//     this journal had acknowledgements in, the cloud lost the epoch, and
//     the journal goes again from its start (resending never marks);
//   - sequence_diverged: the cloud holds other ops at the batch's
//     sequences. Nothing is sent past them and nothing is marked: the
//     failure repeats, with its backoff, until an operator acts.
func (u *Uplink) positionHint(ctx context.Context, sb journal.SealedBatch, body []byte) (result, bool) {
	var p conflictProblem
	if err := json.Unmarshal(body, &p); err != nil || p.Watermark == nil || p.Epoch == nil || *p.Epoch != sb.Epoch {
		return result{}, false
	}
	w := *p.Watermark
	switch p.Code {
	case "sequence_diverged":
		if u.isProbe(sb) {
			u.mu.Lock()
			u.crossed = position{sb.Epoch, sb.LastSeq, true}
			u.mu.Unlock()
			// The old epoch's end is another journal's at the cloud now;
			// the new epoch was started so that its ops need not wait on
			// the old one's: let them go.
			u.log.Error("the cloud holds another op at the end of the journal's previous epoch; sending the new epoch anyway",
				slog.Uint64(logEpoch, uint64(sb.Epoch)), slog.Uint64(logLast, sb.LastSeq), slog.String(logReason, p.Detail))
			if err := u.j.DeleteSealed(ctx, sb.Epoch, sb.FirstSeq); err != nil {
				return result{err: fmt.Errorf("drop the probe batch: %w", err)}, true
			}
			return result{progress: true}, true
		}
		return result{err: fmt.Errorf("batch %d/%d..%d: %w: %s", sb.Epoch, sb.FirstSeq, sb.LastSeq, ErrDiverged, p.Detail)}, true
	case "sequence_gap", "sequence_rewind", "batch_conflict":
	default:
		return result{}, false
	}
	lost, err := u.lostEpoch(ctx, sb.Epoch, w)
	if err != nil {
		return result{err: err}, true
	}
	if lost {
		// A probe, or an epoch's first batch, refused by a cloud that
		// holds nothing of an epoch it acknowledged ops of: as in gap.
		return u.resendAll(ctx, sb.Epoch, sb.FirstSeq), true
	}
	ae, as, err := u.j.Acked(ctx)
	if err != nil {
		return result{err: fmt.Errorf("read acknowledgement watermark: %w", err)}, true
	}
	// What the journal's acks proved of sb.Epoch: up to the watermark in
	// its own epoch, and all of it when a later epoch is acknowledged
	// (epochs go in order: a batch of an older one is a resend).
	var proven uint64
	if ae == sb.Epoch {
		proven = as
	}
	rewind := p.Code == "sequence_rewind"
	switch {
	case rewind && sb.LastSeq <= w:
		// Within the watermark, yet not compared: a cloud older than
		// this terminal's protocol. Resending cannot cure it.
		return result{err: fmt.Errorf("batch %d/%d..%d: the cloud refuses it below its watermark %d without comparing its ops; update the cloud (%w)",
			sb.Epoch, sb.FirstSeq, sb.LastSeq, w, errRetry)}, true
	case !rewind && w > proven && ae <= sb.Epoch:
		return result{err: fmt.Errorf("batch %d/%d..%d: the cloud's %s names watermark %d, beyond the %d its acks proved; not skipping ops on an unsigned answer (%w)",
			sb.Epoch, sb.FirstSeq, sb.LastSeq, p.Code, w, proven, errRetry)}, true
	}
	if err := u.refused(sb, w); err != nil {
		return result{err: err}, true
	}
	if err := u.dropSealed(ctx, sb.Epoch); err != nil {
		return result{err: err}, true
	}
	if !rewind && w > 0 { // as in gap: the cloud lost what follows w
		if err := u.j.ResendFrom(ctx, sb.Epoch, w); err != nil {
			return result{err: fmt.Errorf("record that the cloud lost %d/%d..: %w", sb.Epoch, w+1, err)}, true
		}
	}
	u.mu.Lock()
	if rewind {
		u.held = position{sb.Epoch, w, w > proven} // from stays: cut again from there, ending at w
	} else {
		var last batch.Hash
		if h, err := hex.DecodeString(p.LastHash); err == nil && len(h) == len(last) {
			copy(last[:], h)
		}
		u.setChain(sb.Epoch, w, last)
		u.resumeAfterRefusal(position{sb.Epoch, w, true}, w == 0 || !last.IsZero())
	}
	u.state.Gaps++
	u.mu.Unlock()
	u.log.Warn("cloud refused the batch's position; re-sealing",
		slog.Uint64(logEpoch, uint64(sb.Epoch)), slog.Uint64(logFirst, sb.FirstSeq), slog.Uint64(logWater, w), slog.String(logReason, p.Code))
	return result{progress: true}, true
}

// dropSealed deletes the outbox's sealed batches of epoch and of later
// epochs: cut after a batch of epoch the cloud refused, they no longer
// follow it (a new epoch's first batch behind a refused probe, see
// probeAhead).
func (u *Uplink) dropSealed(ctx context.Context, epoch uint32) error {
	outbox, err := u.j.Sealed(ctx)
	if err != nil {
		return fmt.Errorf("read outbox: %w", err)
	}
	for _, s := range outbox {
		if s.Epoch >= epoch {
			if err := u.j.DeleteSealed(ctx, s.Epoch, s.FirstSeq); err != nil {
				return fmt.Errorf("drop sealed batch %d/%d: %w", s.Epoch, s.FirstSeq, err)
			}
		}
	}
	return nil
}

// behind handles a cloud that holds epoch up to watermark: if that is
// beyond the journal's end in the epoch it is still writing, the journal
// lost ops the cloud holds (restored from a backup no local check caught),
// and it starts a new epoch, so that new ops get sequence numbers the cloud
// has not seen. The journal's ops of the old epoch that the cloud has not
// acknowledged are still sent, cut at the cloud's watermark and compared
// op by op there.
func (u *Uplink) behind(ctx context.Context, epoch uint32, watermark uint64) error {
	head, seq, err := u.j.Head(ctx)
	if err != nil {
		return fmt.Errorf("read the journal's head: %w", err)
	}
	if head != epoch || seq >= watermark {
		return nil
	}
	ne, err := u.j.NewEpoch(ctx, fmt.Sprintf("the cloud holds epoch %d up to %d, beyond this journal's %d", epoch, watermark, seq))
	if err != nil {
		return fmt.Errorf("start a new epoch: the cloud holds epoch %d up to %d, beyond this journal's %d: %w", epoch, watermark, seq, err)
	}
	u.log.Error("journal is behind the cloud; started a new epoch",
		slog.Uint64(logEpoch, uint64(epoch)), slog.Uint64(logWater, watermark), slog.Uint64(logLast, seq), slog.Uint64("new_epoch", uint64(ne)))
	return nil
}

// backlogEvery is how often, at most, an uplink busy catching up counts
// its backlog; an idle or failing uplink counts it every round.
const backlogEvery = time.Second

// refreshBacklog updates the backlog figures of the state.
func (u *Uplink) refreshBacklog(ctx context.Context) {
	st, err := u.j.Stats(ctx)
	if err != nil {
		u.log.Warn("reading the backlog failed", slog.String(logError, err.Error()))
		return
	}
	u.mu.Lock()
	u.state.Backlog, u.state.Oldest, u.state.AckedEpoch, u.state.AckedSeq = st.Unacked, st.OldestUnacked, st.AckedEpoch, st.AckedSeq
	u.backlogAt = u.cfg.Now()
	u.mu.Unlock()
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// problem returns a short printable summary of an error answer's body:
// the code and detail of an RFC 9457 problem document, or the start of
// any other body.
func problem(body []byte) string {
	var p struct{ Code, Detail string }
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		body = []byte(p.Code + ": " + p.Detail)
	}
	const max = 300
	if len(body) > max {
		body = body[:max]
	}
	s := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, string(body))
	if s == "" {
		return "(no body)"
	}
	return s
}
