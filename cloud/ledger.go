package cloud

import (
	"context"
	"strconv"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Ledger is the cloud's storage: the terminal registry, published rules and
// the double-entry points ledger. Implementations are safe for concurrent use.
type Ledger interface {
	// Close releases the database.
	Close() error
	// Ping reports whether the database answers, for a readiness probe,
	// and ErrStorageFull for a while after a write found it full (until a
	// batch is applied again: a smaller write may fit where a batch does
	// not).
	Ping(ctx context.Context) error

	// CreateEnrollCode stores a one-time code for a terminal of a store
	// (creating the store if new). Only a hash of the code is kept.
	// Returns ErrInvalidInput for an empty code, store or terminal.
	CreateEnrollCode(ctx context.Context, c EnrollCode) error
	// Enroll consumes a code atomically and registers (or re-keys) the
	// terminal it was made for, active. Returns ErrEnrollCode when the code
	// is unknown, used or expired at now.
	Enroll(ctx context.Context, code string, key TerminalKey, now time.Time) (Terminal, error)
	// Terminal returns a terminal, or ErrNotFound.
	Terminal(ctx context.Context, id string) (Terminal, error)
	// Terminals lists every terminal, ordered by ID.
	Terminals(ctx context.Context) ([]Terminal, error)
	// RevokeTerminal marks a terminal revoked at now; later batches from it
	// are refused with ErrTerminalRevoked. Returns ErrNotFound.
	RevokeTerminal(ctx context.Context, id string, now time.Time) error
	// StoreRoster returns a store's terminals and gossip keyring. Enroll
	// makes the keyring with the store's first terminal. Returns
	// ErrNotFound for a store without any terminal.
	StoreRoster(ctx context.Context, store string) (StoreRoster, error)
	// RotateGossipKey makes key (GossipKeySize bytes) the store's primary
	// gossip key; the old primary stays, retired at now, until
	// RemoveRetiredGossipKeys. Returns ErrNotFound for a store without a
	// keyring, ErrInvalidInput for a bad or reused key.
	RotateGossipKey(ctx context.Context, store string, key []byte, now time.Time) error
	// RemoveRetiredGossipKeys removes the store's keys retired at or before
	// cutoff and returns how many it removed.
	RemoveRetiredGossipKeys(ctx context.Context, store string, cutoff time.Time) (int, error)

	// PublishRules stores a rules version. Publishing the same version with
	// the same hash again is a no-op; with a different hash it returns
	// ErrRulesConflict. Invalid rules wrap loyalty.ErrInvalidRules.
	PublishRules(ctx context.Context, r loyalty.Rules, now time.Time) error
	// Rules returns a published version, or ErrNotFound.
	Rules(ctx context.Context, version uint32) (loyalty.Rules, error)
	// CurrentRules returns the highest published version, or ErrNotFound.
	CurrentRules(ctx context.Context) (loyalty.Rules, error)

	// Apply applies a verified batch exactly once, in one transaction. It
	// returns a *SequenceError (ErrGap, ErrRewind, ErrDiverged, ErrChain)
	// when the batch does not continue the terminal's journal,
	// ErrUnknownTerminal or ErrTerminalRevoked, ErrInvalidBatch when the
	// batch contradicts itself, and ErrInvariant when a ledger check failed
	// (rolled back: stop and run Check). In all those cases nothing changed.
	Apply(ctx context.Context, b Batch) (Applied, error)
	// Watermark returns the highest sequence applied for a terminal's epoch
	// (0 when none) and the terminal's latest epoch.
	Watermark(ctx context.Context, terminal string, epoch uint32) (wm uint64, latestEpoch uint32, err error)

	// Snapshot returns a card's account as the cloud sees it, with its
	// offline allowance at store and the points expiring soon (the first
	// few dates within the implementation's horizon; sqlstore: 90 days).
	// A card never seen gets a zero snapshot.
	Snapshot(ctx context.Context, card loyalty.CardHash, store string, now time.Time) (loyalty.Snapshot, error)
	// Snapshots returns a page of the snapshots of the cards seen at store,
	// in card-hash order: at most limit of them, of the cards whose hash
	// sorts after the hash after (from the first card when after is zero).
	// A page costs what it holds, however many cards the store has seen.
	Snapshots(ctx context.Context, store string, after loyalty.CardHash, limit int, now time.Time) ([]loyalty.Snapshot, error)

	// Claim credits a purchase made without a card (an applied earn with no
	// card) to card, once: the caller has verified the receipt's claim
	// token and its expiry. The points are the cloud's figure under the
	// earn's rules version (no tier: the buyer was anonymous). Returns
	// ErrNotClaimable (no such card-less earn, or it was reversed) or
	// ErrAlreadyClaimed.
	Claim(ctx context.Context, op loyalty.OpID, card loyalty.CardHash, store string, now time.Time) (Claimed, error)

	// Expire lapses the points of every lot that expires at or before now.
	// One run at a time over a ledger: while another process runs it,
	// Expire lapses nothing and returns a result with Skipped set.
	Expire(ctx context.Context, now time.Time) (ExpireResult, error)
	// Check replays the whole ledger and compares every balance. It returns
	// the report, and ErrCheckFailed (with the report) when anything is off.
	Check(ctx context.Context) (CheckReport, error)
}

// Batch is a verified batch of ops from one terminal, decoded by the server
// (sync/batch) after it checked the signature and the key's status.
type Batch struct {
	Terminal string
	Epoch    uint32
	// FirstSeq and LastSeq bound the ops: Ops[i].Seq == FirstSeq+i.
	FirstSeq, LastSeq uint64
	// Hash identifies the batch (a replay must carry the same hash);
	// PrevHash is the hash of the batch before it in this epoch, empty for
	// the first; it must match the last applied batch, else ErrChain.
	Hash, PrevHash []byte
	Ops            []loyalty.Op
	// ReceivedAt is the cloud's clock when the batch arrived.
	ReceivedAt time.Time
	// KeyID names the key the batch's signature was verified with. When
	// set, Apply refuses the batch (ErrTerminalRevoked) unless it is still
	// the terminal's key: a revoke and a new enrollment may come between
	// the check and the apply.
	KeyID string
}

// Applied is the outcome of Apply: what the ack carries.
type Applied struct {
	Terminal string
	Epoch    uint32
	// Watermark is the highest sequence applied for Terminal in Epoch.
	Watermark uint64
	// LastHash is the hash of the batch that ended at Watermark: the
	// previous hash of the terminal's next batch.
	LastHash []byte
	// Replay is set when the whole batch had been applied before: Results
	// are the original ones and nothing changed.
	Replay  bool
	Results []OpResult
	// Snapshots are fresh, for every card in the batch, at the terminal's store.
	Snapshots []loyalty.Snapshot
	// RulesVersion is the current published rules version (0 when none).
	RulesVersion uint32
	// LatestEpoch is the terminal's newest epoch the ledger holds. Above
	// Epoch, the batch came from a copy of the terminal's journal that
	// went on in an epoch the terminal had left (restored from a backup
	// with its epoch file, a cloned disk): applied, and worth a look.
	LatestEpoch uint32
}

// Status is what happened to one op.
type Status uint8

const (
	StatusApplied   Status = 1 // posted to the ledger now
	StatusDuplicate Status = 2 // the same op (same ID and content) was applied before
	StatusRejected  Status = 3 // refused, see the reason code; the ledger is unchanged by it
)

func (s Status) String() string {
	switch s {
	case StatusApplied:
		return "applied"
	case StatusDuplicate:
		return "duplicate"
	case StatusRejected:
		return "rejected"
	}
	return "unknown"
}

// Reason codes of a rejected op. They are stable: terminals and reports
// match on them.
const (
	ReasonConflict        = "conflict"         // an op with this ID but different content was applied or refused
	ReasonInvalid         = "invalid"          // the op fails loyalty.Op.Validate
	ReasonUnknownTarget   = "unknown_target"   // a reverse names an op the ledger has not applied
	ReasonAlreadyReversed = "already_reversed" // a reverse names an op reversed before
	ReasonNotReversible   = "not_reversible"   // enrolls and reverses cannot be reversed
	ReasonCardLinked      = "card_linked"      // an enroll for a card another member holds
	ReasonNoOwner         = "no_owner"         // an adjust for a member or card the ledger does not know
)

// Flags mark applied ops for review; they never change what was posted.
type Flags uint32

const (
	// FlagReevaluated: the cloud's earn under the op's rules version
	// differed from the terminal's; the difference was posted as a
	// separate "reeval" adjustment.
	FlagReevaluated Flags = 1 << iota
	// FlagRulesUnknown: the earn or redeem names a rules version the
	// cloud never published, or one that cannot evaluate its basket (or
	// only to more points than one op may post), or a reward the version
	// does not have; the terminal's figure was posted unchecked.
	FlagRulesUnknown
	// FlagClockAhead: the op's HLC or wall clock runs more than
	// MaxClockAhead ahead of the cloud's receive time.
	FlagClockAhead
	// FlagOverspend: a redeem exceeded the balance; the shortfall went to
	// the owner's debt and the store's shortfall account.
	FlagOverspend
	// FlagHeld: the card has no member yet; the points are held against
	// the card and move to the member who links it.
	FlagHeld
	// FlagNoCard: an earn without a card; nothing was posted, the points
	// await a claim.
	FlagNoCard
	// FlagRewardCost: a redeem's points differ from the cost of the
	// reward it names under its rules version; the till's figure was
	// posted, as the customer was charged it.
	FlagRewardCost
)

// flagNames are the flags' names, in bit order: stable, for metrics and
// reports.
var flagNames = [...]string{"reevaluated", "rules_unknown", "clock_ahead", "overspend", "held", "no_card", "reward_cost"}

// Names returns the names of the flags set in f, in bit order; a bit
// without a name is "flag" and its number.
func (f Flags) Names() []string {
	var names []string
	for bit := 0; f>>bit != 0; bit++ {
		if f&(1<<bit) == 0 {
			continue
		}
		if bit < len(flagNames) {
			names = append(names, flagNames[bit])
		} else {
			names = append(names, "flag"+strconv.Itoa(bit))
		}
	}
	return names
}

// MaxClockAhead is how far an op's clock may run ahead of the cloud's
// receive time before it is flagged FlagClockAhead.
const MaxClockAhead = 5 * time.Minute

// OpResult is the outcome of one op of a batch.
type OpResult struct {
	ID     loyalty.OpID
	Seq    uint64
	Status Status
	// Reason is a Reason* code for a rejected op.
	Reason string
	// Points is the change the ledger made to the owner's available
	// balance and debt together (the cloud's figure, adjustments included).
	Points loyalty.Points
	Flags  Flags
}

// Claimed is the outcome of a claim.
type Claimed struct {
	Points loyalty.Points
	// Flags: FlagReevaluated when the cloud's figure differs from the
	// terminal's, FlagRulesUnknown, FlagHeld when the card has no member yet.
	Flags    Flags
	Snapshot loyalty.Snapshot
}

// ExpireResult counts what an expiry run lapsed.
type ExpireResult struct {
	Lots   int
	Points loyalty.Points
	// Skipped: another process was running expiry over the same ledger,
	// so this run lapsed nothing.
	Skipped bool
}

// CheckReport is what Check found. Earned, Redeemed, Expired, Adjusted and
// the others are the program totals of the ledger's postings to "avail"
// accounts by transaction kind; Liability is the sum of available balances
// and equals Earned - Redeemed - Expired + Adjusted - Settled.
type CheckReport struct {
	Accounts     int
	Transactions int
	Owners       int
	Lots         int
	Liability    loyalty.Points
	Debt         loyalty.Points
	Earned       loyalty.Points
	Redeemed     loyalty.Points
	Expired      loyalty.Points
	Adjusted     loyalty.Points
	// Settled is what links took from available balances to repay the
	// debt a card and its member brought together.
	Settled  loyalty.Points
	Problems []string
}
