package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Result is what an operation did. It is also what the idempotency record
// keeps, so a retried request gets the same answer.
type Result struct {
	Kind       loyalty.OpKind   `json:"kind"`
	OpID       loyalty.OpID     `json:"op_id"`
	Card       string           `json:"card,omitempty"` // masked
	Known      bool             `json:"known"`
	Member     loyalty.MemberID `json:"member,omitempty"`
	Points     loyalty.Points   `json:"points"` // signed change
	Reasons    []loyalty.Reason `json:"reasons,omitempty"`
	Balance    loyalty.Points   `json:"balance"`
	Tier       string           `json:"tier,omitempty"`
	NextTier   string           `json:"next_tier,omitempty"`
	ToNextTier loyalty.Points   `json:"to_next_tier,omitempty"`
	Offline    bool             `json:"offline"`
	Notice     string           `json:"notice,omitempty"`
	Reward     string           `json:"reward,omitempty"`
	Reverses   loyalty.OpID     `json:"reverses,omitzero"`
	Rules      uint32           `json:"rules_version,omitempty"`
	Receipt    string           `json:"receipt_text,omitempty"`
	ESCPOS     []byte           `json:"receipt_escpos,omitempty"`
	Printed    bool             `json:"printed"` // a print job was queued on the agent's printer
	At         time.Time        `json:"at"`
	// Replayed is set when the answer came from the idempotency record.
	Replayed bool `json:"-"`
	// receipt is what the block was rendered from, for the screen's preview.
	receipt *ReceiptInput
}

// CheckoutRequest posts a basket. Without a card the open session's card
// is used; without either the purchase earns with no card (claimable later).
type CheckoutRequest struct {
	Card    loyalty.CardToken `json:"-"`
	Basket  loyalty.Basket    `json:"basket"`
	Receipt string            `json:"receipt,omitempty"`
	Cashier string            `json:"cashier,omitempty"`
}

// RedeemRequest spends points on a reward.
type RedeemRequest struct {
	Card    loyalty.CardToken `json:"-"`
	Reward  string            `json:"reward"`
	Receipt string            `json:"receipt,omitempty"`
	Cashier string            `json:"cashier,omitempty"`
}

// VoidRequest reverses an earlier op of this terminal.
type VoidRequest struct {
	Op      loyalty.OpID `json:"op"`
	Reason  string       `json:"reason,omitempty"`
	Receipt string       `json:"receipt,omitempty"`
	Cashier string       `json:"cashier,omitempty"`
}

// EnrollRequest links a new card (or the open session's) to a new member,
// or to Member when given.
type EnrollRequest struct {
	Card    loyalty.CardToken `json:"-"`
	Member  loyalty.MemberID  `json:"member,omitempty"`
	Cashier string            `json:"cashier,omitempty"`
}

// storedError is a refusal kept in an idempotency record.
type storedError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// hashOf is the request's identity for the idempotency record: the route,
// the request fields and the card's keyed hash (never the card itself).
func (a *Agent) hashOf(route string, card loyalty.CardToken, req any) []byte {
	b, _ := json.Marshal(req)
	h := card.Hash(a.key)
	return requestHash(route, append(b, h[:]...))
}

// printTimeout bounds one receipt's print job, waiting for paper included.
const printTimeout = 2 * time.Minute

// routeKind names the op kind a route makes, for metrics.
func routeKind(route string) string {
	switch route {
	case "checkout":
		return "earn"
	case "void":
		return "reverse"
	}
	return route
}

// prepared is an op ready to be made durable, with the answer it gives.
type prepared struct {
	op     *loyalty.Op
	res    *Result
	card   loyalty.CardToken
	sessID string
}

// exec runs one POST at most once per idempotency key. prepare computes the
// op and its result (under the card's lock); exec stores the intent, makes
// the op durable, then answers. Refusals are stored too, so a retry gets the
// same answer; failures of the till (journal down) are not.
func (a *Agent) exec(ctx context.Context, key, route string, hash []byte, lock loyalty.CardHash, prepare func(ctx context.Context) (*prepared, error)) (*Result, error) {
	if key == "" {
		return nil, Errorf(CodeInvalid, "The request has no Idempotency-Key: the POS app must send one, so that a retry never counts twice.")
	}
	if len(key) > 255 {
		return nil, Errorf(CodeInvalid, "The Idempotency-Key is longer than 255 characters.")
	}
	if !a.begin() {
		return nil, errShuttingDown
	}
	defer a.ops.Done()
	start := time.Now()

	a.mu.Lock()
	if a.inflight[key] {
		a.mu.Unlock()
		return nil, Errorf(CodeConflict, "This request is still being processed; retry in a moment with the same Idempotency-Key.")
	}
	a.inflight[key] = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.inflight, key)
		a.mu.Unlock()
	}()

	// A checkout's record, when it has one, is in the journal with its op,
	// and the journal's append finds it (ErrDuplicateRequest, answered by
	// execInJournal): a fresh key, nearly every request, costs no lookup.
	inJournal := route == "checkout"
	if rec, err := a.record(ctx, key, !inJournal); err != nil {
		return nil, err
	} else if rec != nil {
		return a.replay(ctx, rec, route, hash)
	}

	unlock := a.lockCard(lock)
	defer unlock()
	p, err := prepare(ctx)
	kind := routeKind(route)
	if err != nil && inJournal {
		// A retry of a checkout that was recorded gets its answer, not a
		// refusal computed afresh (and stored over it).
		if rec, rerr := a.record(ctx, key, true); rerr != nil {
			return nil, rerr
		} else if rec != nil {
			return a.replay(ctx, rec, route, hash)
		}
	}
	if err != nil {
		a.m.ops.Inc(kind, "refused")
		if c := ErrorCode(err); c != CodeInternal && c != CodeUnavailable && c != CodeNoRules {
			body, _ := json.Marshal(storedError{Code: c, Message: ErrorMessage(err)})
			if perr := a.store.put(ctx, &record{Key: key, Route: route, RequestHash: hash, State: stateDone, Reply: body}, a.now()); perr != nil {
				a.log.Warn("store refusal", keyKey, key, keyErr, perr)
			}
		}
		return nil, err
	}
	body, err := json.Marshal(p.res)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "Nothing was recorded: the reply could not be built.", Err: err}
	}
	if p.op.Kind == loyalty.OpEarn {
		// The fast path: the idempotency record rides in the op's own
		// journal transaction, one fsync for both.
		return a.execInJournal(ctx, key, route, hash, body, p, start)
	}
	rec := &record{Key: key, Route: route, RequestHash: hash, State: statePending, Status: 200, Reply: body, Op: p.op}
	if err := a.store.put(ctx, rec, a.now()); err != nil {
		a.m.ops.Inc(kind, "failed")
		if errors.Is(err, errAlreadyReversed) {
			return nil, Errorf(CodeAlreadyReversed, "That sale was already voided; nothing was changed.")
		}
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "its database cannot be written"), Err: err}
	}
	if err := a.append(ctx, p.op); err != nil {
		if isRefusal(ErrorCode(err)) {
			// The journal's own policy check, in the append's transaction,
			// said no (a peer's redeem arrived meanwhile): nothing was
			// appended, and the refusal is the answer.
			a.m.ops.Inc(kind, "refused")
			body, _ := json.Marshal(storedError{Code: ErrorCode(err), Message: ErrorMessage(err)})
			if rerr := a.store.refuse(ctx, key, body); rerr != nil {
				a.log.Warn("store refusal", keyKey, key, keyErr, rerr)
			}
			return nil, err
		}
		// The record stays pending: a journal error can be ambiguous (the
		// op durable after all), and a retry with this key re-appends the
		// very same op, which the journal keeps once.
		a.m.ops.Inc(kind, "failed")
		return nil, err
	}
	if err := a.store.done(ctx, key); err != nil {
		// The op is durable; the record stays pending and a retry re-appends
		// the same op, which the journal recognizes as a duplicate.
		a.log.Warn("mark request done", keyKey, key, keyErr, err)
	}
	return a.finish(ctx, kind, p, start), nil
}

// requestMeta is the idempotency record kept in the journal with its op.
type requestMeta struct {
	Route string          `json:"route"`
	Hash  []byte          `json:"hash"`
	Reply json.RawMessage `json:"reply"`
}

// execInJournal makes p's op and its idempotency record durable in one
// journal transaction. Any failure leaves both or neither: a retry with the
// key finds the op (and replays its reply) or makes the request afresh.
func (a *Agent) execInJournal(ctx context.Context, key, route string, hash, body []byte, p *prepared, start time.Time) (*Result, error) {
	kind := routeKind(route)
	meta, err := json.Marshal(requestMeta{Route: route, Hash: hash, Reply: body})
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "Nothing was recorded: the reply could not be built.", Err: err}
	}
	t := time.Now()
	err = a.journal.AppendRequest(ctx, p.op, key, meta)
	a.m.appendSecs.Observe(time.Since(t).Seconds())
	switch {
	case errors.Is(err, ErrDuplicateRequest):
		// Another attempt with this key made its op first: answer with it.
		rec, rerr := a.record(ctx, key, true)
		if rerr != nil {
			return nil, rerr
		}
		if rec == nil {
			return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "its journal lost a request it reported"), Err: err}
		}
		return a.replay(ctx, rec, route, hash)
	case err != nil && isRefusal(ErrorCode(err)):
		a.m.ops.Inc(kind, "refused")
		body, _ := json.Marshal(storedError{Code: ErrorCode(err), Message: ErrorMessage(err)})
		if perr := a.store.put(ctx, &record{Key: key, Route: route, RequestHash: hash, State: stateDone, Reply: body}, a.now()); perr != nil {
			a.log.Warn("store refusal", keyKey, key, keyErr, perr)
		}
		return nil, err
	case err != nil:
		a.m.ops.Inc(kind, "failed")
		a.log.Error("journal append failed", keyOp, p.op.ID.String(), keyErr, err)
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, firstLine(err)), Err: err}
	}
	return a.finish(ctx, kind, p, start), nil
}

// record returns the idempotency record for key: the agent's database
// holds refusals, voids and records from before the journal kept them;
// the journal holds the rest with their ops.
func (a *Agent) record(ctx context.Context, key string, lookJournal bool) (*record, error) {
	rec, err := a.store.get(ctx, key)
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "its database cannot be read"), Err: err}
	}
	if rec != nil || !lookJournal {
		return rec, nil
	}
	b, op, found, err := a.journal.Request(ctx, key)
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "its journal cannot be read"), Err: err}
	}
	if !found {
		return nil, nil
	}
	var m requestMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, &Error{Code: CodeInternal, Message: "The earlier answer to this request is unreadable.", Err: err}
	}
	return &record{Key: key, Route: m.Route, RequestHash: m.Hash, State: stateDone, Status: 200, Reply: m.Reply, Op: &op}, nil
}

// finish counts, logs and announces a durable op and returns its result.
func (a *Agent) finish(ctx context.Context, kind string, p *prepared, start time.Time) *Result {
	a.m.ops.Inc(kind, "ok")
	a.m.opSecs.Observe(time.Since(start).Seconds(), kind)
	a.log.Info("op recorded", keyOp, p.op.ID.String(), keyKind, kind, keyCard, p.card, keyPoints, int64(p.op.Points),
		"offline", p.op.Offline, keyDuration, time.Since(start))
	a.after(ctx, p)
	return p.res
}

// append makes op durable; a duplicate means an earlier attempt already did.
func (a *Agent) append(ctx context.Context, op *loyalty.Op) error {
	t := time.Now()
	err := a.journal.Append(ctx, op)
	a.m.appendSecs.Observe(time.Since(t).Seconds())
	if err == nil || errors.Is(err, ErrDuplicateOp) {
		return nil
	}
	if isRefusal(ErrorCode(err)) {
		return err
	}
	a.log.Error("journal append failed", keyOp, op.ID.String(), keyErr, err)
	return &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, firstLine(err)), Err: err}
}

// replay answers a retried request from its record.
func (a *Agent) replay(ctx context.Context, rec *record, route string, hash []byte) (*Result, error) {
	if rec.Route != route || !rec.same(hash) {
		return nil, Errorf(CodeKeyReused, "This Idempotency-Key was already used for a different request; use a new key for a new request.")
	}
	a.m.replays.Inc()
	if rec.Op == nil {
		var se storedError
		if err := json.Unmarshal(rec.Reply, &se); err != nil {
			return nil, &Error{Code: CodeInternal, Message: "The earlier answer to this request is unreadable.", Err: err}
		}
		return nil, &Error{Code: se.Code, Message: se.Message}
	}
	if rec.State == statePending {
		// The op may or may not have reached the journal before a crash:
		// append it again; the journal keeps one copy either way.
		if err := a.append(ctx, rec.Op); err != nil {
			if isRefusal(ErrorCode(err)) {
				body, _ := json.Marshal(storedError{Code: ErrorCode(err), Message: ErrorMessage(err)})
				if rerr := a.store.refuse(ctx, rec.Key, body); rerr != nil {
					a.log.Warn("store refusal", keyKey, rec.Key, keyErr, rerr)
				}
			}
			return nil, err
		}
		if err := a.store.done(ctx, rec.Key); err != nil {
			a.log.Warn("mark request done", keyKey, rec.Key, keyErr, err)
		}
	}
	var res Result
	if err := json.Unmarshal(rec.Reply, &res); err != nil {
		return nil, &Error{Code: CodeInternal, Message: "The earlier answer to this request is unreadable.", Err: err}
	}
	res.Replayed = true
	return &res, nil
}

// after runs once an op is durable: the receipt goes to the printer, the
// session closes, the screen hears of it.
func (a *Agent) after(ctx context.Context, p *prepared) {
	if a.notify != nil {
		a.notify()
	}
	if a.onOp != nil {
		a.onOp(ctx, *p.op)
	}
	if p.sessID != "" {
		a.closeSession(p.sessID, "posted")
	}
	if a.printer != nil && len(p.res.ESCPOS) > 0 {
		// The job runs on its own: a printer out of paper holds the job,
		// not the POS's reply. Shutdown waits for it.
		p.res.Printed = true
		a.prints.Add(1)
		go func(id string, data []byte) {
			defer a.prints.Done()
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), printTimeout)
			defer cancel()
			if err := a.printer.Print(pctx, id, data); err != nil {
				a.log.Warn("receipt not printed; reprint it from the POS", keyOp, id, keyErr, err)
			}
		}(p.op.ID.String(), p.res.ESCPOS)
	}
	recent := RecentReceipt{Op: p.op.ID, Kind: p.op.Kind, Card: p.res.Card, Points: p.op.Points, Text: p.res.Receipt, At: p.res.At, in: p.res.receipt}
	if _, ok := a.rcpt.(ReceiptPreviews); ok && recent.in != nil {
		recent.PNG = ReceiptPreviewPath(p.op.ID)
	}
	a.mu.Lock()
	a.receipts = append([]RecentReceipt{recent}, a.receipts...)
	if len(a.receipts) > recentReceipts {
		a.receipts = a.receipts[:recentReceipts]
	}
	a.mu.Unlock()
	ev := CheckoutEvent{Result: *p.res, PNG: recent.PNG}
	ev.ESCPOS = nil
	a.publish(EventCheckout, ev)
}

// CheckoutEvent is what the event stream says of an op: its result, and
// where the screen gets its receipt as a picture.
type CheckoutEvent struct {
	Result
	PNG string `json:"png,omitempty"`
}

// newOp fills the fields every op carries.
func (a *Agent) newOp(kind loyalty.OpKind, now time.Time) (*loyalty.Op, error) {
	id, err := loyalty.NewOpID(now, a.rand)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: "Nothing was recorded: no op ID could be made.", Err: err}
	}
	return &loyalty.Op{ID: id, Kind: kind, Store: a.cfg.Store, Terminal: a.cfg.Terminal, WallTime: now, HLC: a.clock.Tick()}, nil
}

// render fills the receipt block of res.
func (a *Agent) render(in ReceiptInput, res *Result) {
	if a.rcpt == nil {
		return
	}
	r, err := a.rcpt.Render(in)
	if err != nil {
		a.log.Warn("render receipt", keyOp, in.Op.ID.String(), keyErr, err)
		return
	}
	res.Receipt, res.ESCPOS, res.receipt = r.Text, r.ESCPOS, &in
}

// cardFor resolves the card of a request: the one given, or the open session's.
func (a *Agent) cardFor(card loyalty.CardToken) (loyalty.CardToken, string) {
	if !card.IsZero() {
		return card, ""
	}
	if s := a.currentSession(); s != nil {
		return s.card, s.id
	}
	return loyalty.CardToken{}, ""
}

// Checkout records an earn for a basket and answers once it is durable.
func (a *Agent) Checkout(ctx context.Context, key string, req CheckoutRequest) (*Result, error) {
	hash := a.hashOf("checkout", req.Card, req)
	card, sessID := a.cardFor(req.Card)
	return a.exec(ctx, key, "checkout", hash, card.Hash(a.key), func(ctx context.Context) (*prepared, error) {
		rules := a.rules.Load()
		if rules == nil {
			return nil, errNoRules
		}
		if err := checkText(req.Receipt, req.Cashier); err != nil {
			return nil, err
		}
		now := a.now()
		op, err := a.newOp(loyalty.OpEarn, now)
		if err != nil {
			return nil, err
		}
		offline := a.offline()
		var snap loyalty.Snapshot
		var known bool
		res := &Result{Kind: loyalty.OpEarn, OpID: op.ID, Offline: offline, At: now, Rules: rules.Version}
		if !card.IsZero() {
			op.Card = card.Hash(a.key)
			res.Card = card.String()
			snap, known, err = a.view(ctx, op.Card)
			if err != nil {
				return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "the member cache cannot be read"), Err: err}
			}
		}
		pts, reasons, err := rules.Earn(req.Basket, snap, now)
		if err != nil {
			return nil, &Error{Code: CodeInvalid, Message: "The basket cannot be scored: " + strings.TrimPrefix(err.Error(), "loyalty: "), Err: err}
		}
		basket := req.Basket
		op.Basket, op.Points, op.RulesVersion, op.Offline = &basket, pts, rules.Version, offline
		op.Receipt, op.Cashier, op.Member = req.Receipt, req.Cashier, snap.Member
		if err := op.Validate(); err != nil {
			return nil, &Error{Code: CodeInvalid, Message: "The checkout cannot be recorded: " + strings.TrimPrefix(err.Error(), "loyalty: "), Err: err}
		}
		res.Points, res.Reasons, res.Known, res.Member = pts, reasons, known, snap.Member
		after := snap
		if known {
			after.Balance += pts
			if after.NextTier != "" {
				after.ToNextTier = max(0, after.ToNextTier-pts)
			}
			res.Balance, res.Tier, res.NextTier, res.ToNextTier = after.Balance, after.Tier, after.NextTier, after.ToNextTier
		} else if !card.IsZero() {
			res.Notice = msgUnknownCardOnline
			if offline {
				res.Notice = msgUnknownCardOffline
			}
		}
		a.render(ReceiptInput{Op: *op, Card: card, Known: known, Member: after, Reasons: reasons, Rules: rules, Offline: offline}, res)
		return &prepared{op: op, res: res, card: card, sessID: sessID}, nil
	})
}

// Redeem spends points on a reward, within the offline policy when the
// cloud cannot be reached.
func (a *Agent) Redeem(ctx context.Context, key string, req RedeemRequest) (*Result, error) {
	hash := a.hashOf("redeem", req.Card, req)
	card, sessID := a.cardFor(req.Card)
	return a.exec(ctx, key, "redeem", hash, card.Hash(a.key), func(ctx context.Context) (*prepared, error) {
		if card.IsZero() {
			return nil, Errorf(CodeNoCard, "No card: scan or tap the member's card first.")
		}
		rules := a.rules.Load()
		if rules == nil {
			return nil, errNoRules
		}
		if err := checkText(req.Receipt, req.Cashier); err != nil {
			return nil, err
		}
		reward, ok := rules.Reward(req.Reward)
		if !ok {
			return nil, Errorf(CodeNotFound, "There is no reward %q in the current program.", req.Reward)
		}
		now := a.now()
		offline := a.offline()
		h := card.Hash(a.key)
		snap, known, err := a.view(ctx, h)
		if err != nil {
			return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "the member cache cannot be read"), Err: err}
		}
		if err := a.journal.CheckRedeem(ctx, h, reward.Cost, offline, now); err != nil {
			return nil, refusal(err, snap.Balance, reward.Cost)
		}
		op, err := a.newOp(loyalty.OpRedeem, now)
		if err != nil {
			return nil, err
		}
		op.Card, op.Member, op.Points, op.Reward, op.Offline = h, snap.Member, -reward.Cost, reward.ID, offline
		op.Receipt, op.Cashier, op.RulesVersion = req.Receipt, req.Cashier, rules.Version
		if err := op.Validate(); err != nil {
			return nil, &Error{Code: CodeInvalid, Message: "The redeem cannot be recorded: " + strings.TrimPrefix(err.Error(), "loyalty: "), Err: err}
		}
		after := snap
		after.Balance -= reward.Cost
		res := &Result{Kind: loyalty.OpRedeem, OpID: op.ID, Card: card.String(), Known: known, Member: snap.Member,
			Points: op.Points, Balance: after.Balance, Tier: after.Tier, NextTier: after.NextTier, ToNextTier: after.ToNextTier,
			Offline: offline, Reward: reward.Name, At: now, Rules: rules.Version}
		a.render(ReceiptInput{Op: *op, Card: card, Known: known, Member: after, Reward: reward.Name, Rules: rules, Offline: offline}, res)
		return &prepared{op: op, res: res, card: card, sessID: sessID}, nil
	})
}

func isRefusal(c Code) bool {
	switch c {
	case CodeUnknownCard, CodeInsufficientPoints, CodeOfflineCapReached, CodeSnapshotTooOld:
		return true
	}
	return false
}

// refusal turns a policy error into the cashier's message.
func refusal(err error, balance, cost loyalty.Points) error {
	var e *Error
	if errors.As(err, &e) && isRefusal(e.Code) {
		return e
	}
	switch {
	case errors.Is(err, ErrInsufficientPoints):
		return &Error{Code: CodeInsufficientPoints, Message: fmt.Sprintf(msgInsufficient, balance, cost), Err: err}
	case errors.Is(err, ErrOfflineCapReached):
		return &Error{Code: CodeOfflineCapReached, Message: msgOfflineCap, Err: err}
	case errors.Is(err, ErrSnapshotTooOld):
		return &Error{Code: CodeSnapshotTooOld, Message: msgSnapshotTooOld, Err: err}
	case errors.Is(err, ErrUnknownCard):
		return &Error{Code: CodeUnknownCard, Message: msgUnknownCardRedeem, Err: err}
	}
	return &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "the redeem policy cannot be checked"), Err: err}
}

// Void reverses an earlier op of this terminal: its points go back.
func (a *Agent) Void(ctx context.Context, key string, req VoidRequest) (*Result, error) {
	hash := a.hashOf("void", loyalty.CardToken{}, req)
	var lock loyalty.CardHash
	orig, found, err := a.store.op(ctx, req.Op)
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "its database cannot be read"), Err: err}
	}
	if !found && !req.Op.IsZero() {
		// A sale's record is in the journal with its op.
		var op loyalty.Op
		op, found, err = a.journal.Op(ctx, req.Op)
		if err != nil {
			return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "its journal cannot be read"), Err: err}
		}
		orig = &op
	}
	if found {
		lock = orig.Card
	}
	return a.exec(ctx, key, "void", hash, lock, func(ctx context.Context) (*prepared, error) {
		if req.Op.IsZero() {
			return nil, Errorf(CodeInvalid, "Say which sale to void: the op ID from its receipt or checkout reply.")
		}
		if !found {
			return nil, Errorf(CodeNotFound, "This till has no sale %s: void a sale at the till that made it.", req.Op)
		}
		if orig.Kind != loyalty.OpEarn && orig.Kind != loyalty.OpRedeem {
			return nil, Errorf(CodeInvalid, "Only a sale or a redeem can be voided at the till, not a %s.", orig.Kind)
		}
		if done, err := a.store.reversed(ctx, orig.ID); err != nil {
			return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "its database cannot be read"), Err: err}
		} else if done {
			return nil, Errorf(CodeAlreadyReversed, "That sale was already voided; nothing was changed.")
		}
		if len(req.Reason) > 256 {
			return nil, Errorf(CodeInvalid, "The reason is longer than 256 characters.")
		}
		if err := checkText(req.Receipt, req.Cashier); err != nil {
			return nil, err
		}
		now := a.now()
		op, err := a.newOp(loyalty.OpReverse, now)
		if err != nil {
			return nil, err
		}
		op.Card, op.Member, op.Points, op.Reverses, op.Reason = orig.Card, orig.Member, -orig.Points, orig.ID, req.Reason
		op.Receipt, op.Cashier, op.RulesVersion, op.Offline = req.Receipt, req.Cashier, orig.RulesVersion, a.offline()
		if err := op.Validate(); err != nil {
			return nil, &Error{Code: CodeInvalid, Message: "The void cannot be recorded: " + strings.TrimPrefix(err.Error(), "loyalty: "), Err: err}
		}
		res := &Result{Kind: loyalty.OpReverse, OpID: op.ID, Member: orig.Member, Points: op.Points, Reverses: orig.ID,
			Offline: op.Offline, At: now, Rules: op.RulesVersion}
		if !orig.Card.IsZero() {
			snap, known, err := a.view(ctx, orig.Card)
			if err == nil && known {
				res.Known, res.Balance, res.Tier = true, snap.Balance+op.Points, snap.Tier
			}
		}
		a.render(ReceiptInput{Op: *op, Known: res.Known, Member: loyalty.Snapshot{Member: orig.Member, Balance: res.Balance, Tier: res.Tier}, Offline: op.Offline}, res)
		return &prepared{op: op, res: res}, nil
	})
}

// Enroll links a new card to a new member (or to an existing one).
func (a *Agent) Enroll(ctx context.Context, key string, req EnrollRequest) (*Result, error) {
	hash := a.hashOf("enroll", req.Card, req)
	card, sessID := a.cardFor(req.Card)
	return a.exec(ctx, key, "enroll", hash, card.Hash(a.key), func(ctx context.Context) (*prepared, error) {
		if card.IsZero() {
			return nil, Errorf(CodeNoCard, "No card: scan or tap the new card to enroll it.")
		}
		if err := checkText("", req.Cashier); err != nil {
			return nil, err
		}
		if len(req.Member) > loyalty.MaxFieldLen {
			return nil, Errorf(CodeInvalid, "The member ID is longer than %d characters.", loyalty.MaxFieldLen)
		}
		h := card.Hash(a.key)
		if snap, known, err := a.view(ctx, h); err != nil {
			return nil, &Error{Code: CodeUnavailable, Message: fmt.Sprintf(msgJournalFailed, "the member cache cannot be read"), Err: err}
		} else if known && snap.Member != "" {
			return nil, Errorf(CodeConflict, "This card already belongs to a member; it cannot be enrolled again.")
		}
		now := a.now()
		op, err := a.newOp(loyalty.OpEnroll, now)
		if err != nil {
			return nil, err
		}
		member := req.Member
		if member == "" {
			member = loyalty.MemberID("m-" + op.ID.String())
		}
		op.Card, op.Member, op.Cashier, op.Offline = h, member, req.Cashier, a.offline()
		op.RulesVersion = a.rulesVersion()
		if err := op.Validate(); err != nil {
			return nil, &Error{Code: CodeInvalid, Message: "The enrollment cannot be recorded: " + strings.TrimPrefix(err.Error(), "loyalty: "), Err: err}
		}
		res := &Result{Kind: loyalty.OpEnroll, OpID: op.ID, Card: card.String(), Known: true, Member: member, Offline: op.Offline, At: now, Rules: op.RulesVersion}
		rules := a.rules.Load()
		if rules != nil {
			res.Tier, res.NextTier, res.ToNextTier = rules.TierFor(0)
		}
		a.render(ReceiptInput{Op: *op, Card: card, Known: true, Rules: rules, Offline: op.Offline,
			Member: loyalty.Snapshot{Card: h, Member: member, Tier: res.Tier, NextTier: res.NextTier, ToNextTier: res.ToNextTier, AsOf: now}}, res)
		return &prepared{op: op, res: res, card: card, sessID: sessID}, nil
	})
}

// MemberView is what GET /v1/members/{card} answers.
type MemberView struct {
	Card       string                   `json:"card"` // masked
	Known      bool                     `json:"known"`
	Member     loyalty.MemberID         `json:"member,omitempty"`
	Balance    loyalty.Points           `json:"balance"`
	Debt       loyalty.Points           `json:"debt,omitempty"`
	Tier       string                   `json:"tier,omitempty"`
	NextTier   string                   `json:"next_tier,omitempty"`
	ToNextTier loyalty.Points           `json:"to_next_tier,omitempty"`
	Expiring   []loyalty.ExpiringPoints `json:"expiring,omitempty"`
	AsOf       time.Time                `json:"as_of,omitzero"`
	Offline    bool                     `json:"offline"`
	Notice     string                   `json:"notice,omitempty"`
}

// Member returns the card's local view.
func (a *Agent) Member(ctx context.Context, card loyalty.CardToken) (MemberView, error) {
	snap, known, err := a.view(ctx, card.Hash(a.key))
	if err != nil {
		return MemberView{}, &Error{Code: CodeUnavailable, Message: "This till cannot read the member cache right now.", Err: err}
	}
	v := MemberView{Card: card.String(), Known: known, Offline: a.offline()}
	if !known {
		v.Notice = msgUnknownCardOnline
		if v.Offline {
			v.Notice = msgUnknownCardOffline
		}
		return v, nil
	}
	v.Member, v.Balance, v.Debt, v.Tier, v.NextTier, v.ToNextTier, v.Expiring, v.AsOf =
		snap.Member, snap.Balance, snap.Debt, snap.Tier, snap.NextTier, snap.ToNextTier, snap.Expiring, snap.AsOf
	return v, nil
}

func checkText(receipt, cashier string) error {
	if len(receipt) > loyalty.MaxFieldLen || len(cashier) > loyalty.MaxFieldLen {
		return Errorf(CodeInvalid, "The receipt number and cashier ID are at most %d characters.", loyalty.MaxFieldLen)
	}
	return nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
