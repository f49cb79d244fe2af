package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Defaults for Policy.
const (
	DefaultMaxSnapshotAge                  = 72 * time.Hour
	DefaultOfflineRedeemCap loyalty.Points = 500
)

// Policy decides whether a redeem may go ahead while the cloud cannot be
// reached (invariant 4: offline overspend is bounded). A redeem is allowed
// only when
//
//   - the card has a snapshot no older than MaxSnapshotAge,
//   - the points fit the local view's available balance (snapshot balance
//     plus this terminal's unacknowledged ops, less the snapshot's debt and
//     the store peers' offline redeems no snapshot covers yet), and
//   - the card's redeems the cloud has not seen stay within its offline
//     allowance: the snapshot's Allowance while it is valid (counting
//     OfflineRedeemed: this terminal's redeems after the journal position
//     the snapshot holds, offline or not, and every recorded peer redeem),
//     otherwise OfflineRedeemCap per calendar day in Location, or the
//     expired allowance when it is lower (counting this terminal's
//     redeems of that day made offline or not yet held by the snapshot,
//     and its peers' offline redeems of that day).
//
// The policy runs at the journal's clock when the redeem is appended, not
// at the op's wall time: a retry long after is judged as of the retry.
type Policy struct {
	MaxSnapshotAge   time.Duration
	OfflineRedeemCap loyalty.Points
	// Location sets where a day starts for OfflineRedeemCap; time.Local when nil.
	Location *time.Location
}

// DefaultPolicy returns the policy with the Default* values.
func DefaultPolicy() Policy {
	return Policy{MaxSnapshotAge: DefaultMaxSnapshotAge, OfflineRedeemCap: DefaultOfflineRedeemCap}
}

// Validate reports a policy that cannot be applied.
func (p Policy) Validate() error {
	if p.MaxSnapshotAge <= 0 {
		return fmt.Errorf("%w: offline policy: the maximum snapshot age must be positive", ErrInvalid)
	}
	if p.OfflineRedeemCap < 0 {
		return fmt.Errorf("%w: offline policy: the offline redeem cap cannot be negative (0 forbids offline redeems)", ErrInvalid)
	}
	return nil
}

// Refusals of the offline policy. A refusal is a *RefusalError that wraps
// one of these; its message is written for the cashier.
var (
	ErrUnknownCard        = errors.New("card not known at this till")
	ErrInsufficientPoints = errors.New("not enough points")
	ErrOfflineCapReached  = errors.New("offline redeem limit reached")
	ErrSnapshotTooOld     = errors.New("card balance too old to redeem offline")
)

// RefusalError is the offline policy saying no, with what the till shows.
type RefusalError struct {
	Err       error          // ErrUnknownCard, ErrInsufficientPoints, ErrOfflineCapReached or ErrSnapshotTooOld
	Message   string         // for the cashier
	Requested loyalty.Points // points the redeem needed
	// Available is the balance (ErrInsufficientPoints) or what remains of
	// the offline allowance (ErrOfflineCapReached).
	Available loyalty.Points
}

func (e *RefusalError) Error() string { return e.Message }

// Unwrap returns the sentinel, for errors.Is.
func (e *RefusalError) Unwrap() error { return e.Err }

// CheckOfflineRedeem applies p to a redeem of points (a positive amount)
// with card, now by the journal's clock. It returns the card's local view,
// and a *RefusalError when the policy refuses. Between this check and an
// Append another redeem may slip in: AppendOfflineRedeem checks and
// appends in one transaction.
func (j *Journal) CheckOfflineRedeem(ctx context.Context, card loyalty.CardHash, points loyalty.Points, p Policy) (View, error) {
	return j.CheckOfflineRedeemAt(ctx, card, points, p, j.opts.Now())
}

// CheckOfflineRedeemAt is CheckOfflineRedeem at the given time.
func (j *Journal) CheckOfflineRedeemAt(ctx context.Context, card loyalty.CardHash, points loyalty.Points, p Policy, now time.Time) (View, error) {
	if err := p.Validate(); err != nil {
		return View{}, err
	}
	tx, err := j.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return View{}, fmt.Errorf("check offline redeem: %w", classify(err))
	}
	defer tx.Rollback()
	return p.check(ctx, tx, card, points, now)
}

// AppendOfflineRedeem appends a redeem made without the cloud, marking it
// Offline, if p allows it. The check and the append run in the same
// transaction, so two redeems racing on one card cannot both pass on the
// same balance. A refusal is a *RefusalError and nothing is appended.
func (j *Journal) AppendOfflineRedeem(ctx context.Context, op loyalty.Op, p Policy) (loyalty.Op, error) {
	if err := p.Validate(); err != nil {
		return loyalty.Op{}, err
	}
	if op.Kind != loyalty.OpRedeem {
		return loyalty.Op{}, fmt.Errorf("%w: AppendOfflineRedeem takes a redeem, got %s", ErrInvalid, op.Kind)
	}
	op.Offline = true
	return j.append(ctx, op, func(ctx context.Context, tx *sql.Tx, op *loyalty.Op) error {
		// Now, not the op's wall time: a retried op made long ago must
		// meet the policy as it stands today.
		_, err := p.check(ctx, tx, op.Card, -op.Points, j.opts.Now())
		return err
	}, nil)
}

func (p Policy) check(ctx context.Context, q queryer, card loyalty.CardHash, points loyalty.Points, now time.Time) (View, error) {
	if points <= 0 {
		return View{}, fmt.Errorf("%w: a redeem spends a positive number of points, got %d", ErrInvalid, points)
	}
	v, err := view(ctx, q, card)
	if err != nil {
		return v, err
	}
	refuse := func(sentinel error, available loyalty.Points, format string, args ...any) (View, error) {
		return v, &RefusalError{Err: sentinel, Message: fmt.Sprintf(format, args...), Requested: points, Available: available}
	}
	if !v.Known {
		return refuse(ErrUnknownCard, 0,
			"This card is not known at this till and the loyalty service cannot be reached: points cannot be redeemed now. The purchase still earns its points.")
	}
	if age := now.Sub(v.Snapshot.AsOf); age > p.MaxSnapshotAge {
		return refuse(ErrSnapshotTooOld, 0,
			"This card's balance was last confirmed %s ago; offline, points can only be redeemed within %s of that. Try again when the network is back.",
			roundAge(age), roundAge(p.MaxSnapshotAge))
	}
	if avail := v.Available(); points > avail {
		return refuse(ErrInsufficientPoints, max(avail, 0),
			"Not enough points: the card has %d points available, this reward needs %d.", max(avail, 0), points)
	}
	var used, limit loyalty.Points
	var what string
	if a := v.Snapshot.Allowance; a.Valid(now) {
		limit, what = a.Points, "since the balance was last confirmed"
		used, err = uncoveredRedeems(ctx, q, card, v.held)
	} else {
		loc := p.Location
		if loc == nil {
			loc = time.Local
		}
		t := now.In(loc)
		day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
		limit, what = p.OfflineRedeemCap, "today"
		if a != nil {
			// An expired allowance still says how much the cloud would
			// risk on this card: the daily cap never lifts it.
			limit = min(limit, a.Points)
		}
		used, err = redeemedBetween(ctx, q, card, day, day.AddDate(0, 0, 1), v.held.covers)
	}
	if err != nil {
		return v, err
	}
	if used > limit || points > limit-used {
		left := max(limit-used, 0)
		return refuse(ErrOfflineCapReached, left,
			"Offline redeem limit reached: this card may redeem %d points while the loyalty service is unreachable, %d already redeemed %s, so at most %d more now.",
			limit, used, what, left)
	}
	return v, nil
}

func roundAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	default:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
}
