package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// handleBatch is POST /v1/batches. Order matters (invariant 6): cap and
// read the body, parse the envelope, find the terminal the kid names, check
// its status and key, verify the signature and decode the batch strictly,
// and only then hand it to the ledger. The reply is a signed ack: 200 for
// an applied or duplicate batch, carrying the hash of the last batch
// applied; 409 with a gap ack that carries the watermark and that hash when
// the batch does not follow the watermark. A batch whose previous hash is
// not that hash (the zero hash for an epoch's first batch) gets a 409
// batch_conflict problem naming it.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := batch.ReadBody(w, r, int(s.MaxBatchBytes))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	env, err := batch.ParseEnvelope(body, int(s.MaxBatchBytes))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if env.ContentType != batch.TypeBatch {
		s.fail(w, r, problem(CodeMalformedBatch, "the message is a %q, not a batch", env.ContentType))
		return
	}
	kid := env.KeyID
	t, err := s.terminal(ctx, kid.Signer)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if kid.Key != t.KeyID || kid.Key != batch.Fingerprint(t.PublicKey) {
		s.Logger.Warn("batch signed with a key the terminal did not enroll", logTerminal, t.ID)
		s.fail(w, r, problem(CodeKeyMismatch, "the batch names key %s; terminal %q enrolled key %s", kid.Key, t.ID, t.KeyID))
		return
	}
	b, hash, err := env.OpenBatch(s.Program, t.PublicKey)
	if err != nil {
		s.Logger.Warn("batch refused", logTerminal, t.ID, logCode, batch.Code(err))
		s.fail(w, r, err)
		return
	}
	if t.Status != cloud.TerminalActive { // after the signature: only the key's holder learns it
		s.Logger.Warn("batch from a revoked terminal refused", logTerminal, t.ID, logStore, t.Store)
		s.fail(w, r, problem(CodeTerminalRevoked, "terminal %q was revoked; enroll a replacement with a new code", t.ID))
		return
	}
	in := cloud.Batch{
		Terminal:   b.Terminal,
		Epoch:      b.Epoch,
		FirstSeq:   b.First,
		LastSeq:    b.Last,
		Hash:       hash[:],
		Ops:        b.Ops,
		ReceivedAt: s.Now(),
		KeyID:      t.KeyID,
	}
	if !b.Prev.IsZero() { // the zero hash is "none": an epoch's first batch
		in.PrevHash = b.Prev[:]
	}
	applied, err := s.apply(r, in)
	var seq *cloud.SequenceError
	if errors.As(err, &seq) && seq.Kind == cloud.SeqGap {
		s.Logger.Info("batch does not follow the watermark", logTerminal, t.ID, logEpoch, b.Epoch, logFirst, b.First, logLast, b.Last, "watermark", seq.Watermark)
		s.writeAck(w, r, http.StatusConflict, &batch.Ack{
			Terminal: b.Terminal, Epoch: b.Epoch, Status: batch.AckGap,
			Watermark: seq.Watermark, LastHash: toHash(seq.LastHash), BatchHash: hash,
		})
		return
	}
	if errors.As(err, &seq) && seq.Kind == cloud.SeqChain {
		s.Logger.Warn("batch does not chain to the last batch applied", logTerminal, t.ID, logEpoch, b.Epoch, logFirst, b.First, logLast, b.Last,
			"prev", b.Prev.Short(), "last_applied", shortHash(seq.LastHash))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ack := &batch.Ack{
		Terminal:     applied.Terminal,
		Epoch:        applied.Epoch,
		Status:       batch.AckApplied,
		Watermark:    applied.Watermark,
		BatchHash:    hash,
		Results:      toResults(applied.Results, b.Ops),
		RulesVersion: applied.RulesVersion,
	}
	if applied.Replay {
		ack.Status = batch.AckDuplicate
	} else if s.Observer != nil {
		s.Observer.Ops(applied.Results)
	}
	if !applied.Replay && applied.LatestEpoch > applied.Epoch {
		s.Logger.Warn("new ops in an epoch the terminal had left: a copy of its journal (restored with its epoch file, or a cloned disk) is selling too; find the second till",
			logTerminal, t.ID, logStore, t.Store, logEpoch, b.Epoch, "latest_epoch", applied.LatestEpoch, logFirst, b.First, logLast, b.Last)
	}
	ack.LastHash = toHash(applied.LastHash)
	asOf := s.snapshotStamp() // after the commit: see snapshotStamp
	for _, sn := range applied.Snapshots {
		if !sn.Card.IsZero() {
			sn.AsOf = asOf
			ack.Snapshots = append(ack.Snapshots, sn)
		}
	}
	s.Logger.Info("batch "+ack.Status.String(), logTerminal, t.ID, logStore, t.Store, logEpoch, b.Epoch,
		logFirst, b.First, logLast, b.Last, logOps, len(b.Ops), "watermark", applied.Watermark)
	s.writeAck(w, r, http.StatusOK, ack)
}

// writeAck stamps, seals and writes an ack.
func (s *Server) writeAck(w http.ResponseWriter, r *http.Request, status int, ack *batch.Ack) {
	ack.Time = s.Now().UTC()
	ack.HLC = s.hlc.Tick()
	if sw, ok := w.(*statusWriter); ok {
		sw.ack = ack.Status.String()
	}
	sealed, err := s.signer.SealAck(ack)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeSealed(w, status, sealed)
}

// writeSealed writes a COSE_Sign1 message.
func writeSealed(w http.ResponseWriter, status int, sealed []byte) {
	w.Header().Set("Content-Type", batch.ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(sealed)
}

// toHash reads a batch hash from the ledger (zero when it has none).
func toHash(b []byte) batch.Hash {
	var h batch.Hash
	if len(b) == len(h) {
		copy(h[:], b)
	}
	return h
}

// rejectCodes maps the ledger's reason codes to the wire's.
var rejectCodes = map[string]batch.RejectCode{
	cloud.ReasonConflict:        batch.RejectConflict,
	cloud.ReasonInvalid:         batch.RejectInvalid,
	cloud.ReasonUnknownTarget:   batch.RejectUnknownOp,
	cloud.ReasonAlreadyReversed: batch.RejectAlreadyReversed,
	cloud.ReasonNoOwner:         batch.RejectUnknownMember,
	cloud.ReasonNotReversible:   batch.RejectNotReversible,
	cloud.ReasonCardLinked:      batch.RejectCardLinked,
}

// toResults turns the ledger's per-op results into the ack's. Adjusted is
// the cloud's figure minus the terminal's for a re-evaluated earn.
func toResults(rs []cloud.OpResult, ops []loyalty.Op) []batch.Result {
	byID := make(map[loyalty.OpID]*loyalty.Op, len(ops))
	for i := range ops {
		byID[ops[i].ID] = &ops[i]
	}
	out := make([]batch.Result, len(rs))
	for i, r := range rs {
		res := batch.Result{Seq: r.Seq, ID: r.ID}
		switch r.Status {
		case cloud.StatusApplied:
			res.Outcome = batch.Applied
		case cloud.StatusDuplicate:
			res.Outcome = batch.Duplicate
		default:
			res.Outcome = batch.Rejected
			code, ok := rejectCodes[r.Reason]
			if !ok {
				code = batch.RejectInvalid
			}
			res.Reason = code
		}
		if op := byID[r.ID]; op != nil && r.Flags&cloud.FlagReevaluated != 0 {
			res.Adjusted = r.Points - op.Points
		}
		out[i] = res
	}
	return out
}

// apply applies in in one of the apply slots, given back however
// Ledger.Apply ends: a panic there costs its request, which net/http
// recovers, and must not cost a slot too.
func (s *Server) apply(r *http.Request, in cloud.Batch) (cloud.Applied, error) {
	release, err := s.acquireApply(r)
	if err != nil {
		return cloud.Applied{}, err
	}
	defer release()
	return s.Ledger.Apply(r.Context(), in)
}

// acquireApply waits for one of the MaxConcurrentApply slots, at most
// ApplyQueueWait; the caller must call release.
func (s *Server) acquireApply(r *http.Request) (release func(), err error) {
	release = func() { <-s.applySlots }
	select {
	case s.applySlots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(s.ApplyQueueWait)
	defer t.Stop()
	select {
	case s.applySlots <- struct{}{}:
		return release, nil
	case <-t.C:
		p := problem(CodeUnavailable, "the ledger is busy with %d batches; retry after the Retry-After delay", s.MaxConcurrentApply)
		p.RetryAfter = busyRetryAfter
		return nil, p
	case <-r.Context().Done():
		return nil, fmt.Errorf("wait to apply: %w", r.Context().Err())
	}
}
