package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// JournalStore adapts offline/journal to the agent's Journal: durable
// appends, the local view, and the offline policy, whose redeem check runs
// in the same transaction as the append.
type JournalStore struct {
	J      *journal.Journal
	Policy journal.Policy
}

var _ Journal = JournalStore{}

// Append makes op durable and copies back what the journal assigned.
func (s JournalStore) Append(ctx context.Context, op *loyalty.Op) error {
	var stored loyalty.Op
	var err error
	if op.Kind == loyalty.OpRedeem && op.Offline {
		stored, err = s.J.AppendOfflineRedeem(ctx, *op, s.Policy)
	} else {
		stored, err = s.J.Append(ctx, *op)
	}
	if errors.Is(err, journal.ErrDuplicateOp) {
		return fmt.Errorf("%w: %w", ErrDuplicateOp, err)
	}
	if err != nil {
		return policyError(err)
	}
	*op = stored
	return nil
}

// AppendRequest makes op and the request's key and meta durable in one
// transaction. An offline redeem is refused: its policy runs in Append.
func (s JournalStore) AppendRequest(ctx context.Context, op *loyalty.Op, key string, meta []byte) error {
	if op.Kind == loyalty.OpRedeem && op.Offline {
		return fmt.Errorf("append op %s with its request: an offline redeem goes through Append, which applies the offline policy", op.ID)
	}
	stored, err := s.J.AppendRequest(ctx, *op, journal.Request{Key: key, Meta: meta})
	switch {
	case errors.Is(err, journal.ErrDuplicateOp):
		return fmt.Errorf("%w: %w", ErrDuplicateOp, err)
	case errors.Is(err, journal.ErrDuplicateRequest):
		return fmt.Errorf("%w: %w", ErrDuplicateRequest, err)
	case err != nil:
		return policyError(err)
	}
	*op = stored
	return nil
}

// Request returns what AppendRequest stored for key.
func (s JournalStore) Request(ctx context.Context, key string) ([]byte, loyalty.Op, bool, error) {
	req, op, found, err := s.J.RequestByKey(ctx, key)
	return req.Meta, op, found, err
}

// Op returns a recorded op by ID.
func (s JournalStore) Op(ctx context.Context, id loyalty.OpID) (loyalty.Op, bool, error) {
	return s.J.OpByID(ctx, id)
}

// View returns the local view; its balance is what the card may spend
// (snapshot and unacknowledged ops, less debt and peers' offline redeems).
func (s JournalStore) View(ctx context.Context, card loyalty.CardHash) (loyalty.Snapshot, bool, error) {
	v, err := s.J.View(ctx, card)
	if err != nil || !v.Known {
		return loyalty.Snapshot{}, false, err
	}
	snap := v.Snapshot
	snap.Balance = v.Available()
	snap.Debt = 0
	return snap, true, nil
}

// CheckRedeem applies the offline policy when offline; online, the points
// must fit the local view.
func (s JournalStore) CheckRedeem(ctx context.Context, card loyalty.CardHash, points loyalty.Points, offline bool, _ time.Time) error {
	if offline {
		_, err := s.J.CheckOfflineRedeem(ctx, card, points, s.Policy)
		return policyError(err)
	}
	v, err := s.J.View(ctx, card)
	if err != nil {
		return err
	}
	if !v.Known {
		return &Error{Code: CodeUnknownCard, Message: msgUnknownCardRedeem, Err: ErrUnknownCard}
	}
	if avail := v.Available(); points > avail {
		return &Error{Code: CodeInsufficientPoints, Message: fmt.Sprintf(msgInsufficient, max(avail, 0), points), Err: ErrInsufficientPoints}
	}
	return nil
}

// policyError turns a journal refusal into an agent refusal with the
// journal's message for the cashier.
func policyError(err error) error {
	var re *journal.RefusalError
	if !errors.As(err, &re) {
		return err
	}
	var code Code
	var sentinel error
	switch {
	case errors.Is(err, journal.ErrUnknownCard):
		code, sentinel = CodeUnknownCard, ErrUnknownCard
	case errors.Is(err, journal.ErrInsufficientPoints):
		code, sentinel = CodeInsufficientPoints, ErrInsufficientPoints
	case errors.Is(err, journal.ErrOfflineCapReached):
		code, sentinel = CodeOfflineCapReached, ErrOfflineCapReached
	case errors.Is(err, journal.ErrSnapshotTooOld):
		code, sentinel = CodeSnapshotTooOld, ErrSnapshotTooOld
	default:
		return err
	}
	return &Error{Code: code, Message: re.Message, Err: fmt.Errorf("%w: %w", sentinel, err)}
}

// view returns the card's local view. A member enrolled at this till that
// the cloud has sent no snapshot of yet has no tier in the journal's view:
// it gets the one its balance reaches under the current rules.
func (a *Agent) view(ctx context.Context, card loyalty.CardHash) (loyalty.Snapshot, bool, error) {
	snap, known, err := a.journal.View(ctx, card)
	if err != nil || !known || snap.Tier != "" {
		return snap, known, err
	}
	if r := a.rules.Load(); r != nil {
		snap.Tier, snap.NextTier, snap.ToNextTier = r.TierFor(snap.Balance)
	}
	return snap, known, nil
}
