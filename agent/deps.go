package agent

import (
	"context"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Journal is what the agent needs of the terminal's journal
// (offline/journal): durable appends, the local view of a member, and the
// offline redeem policy.
type Journal interface {
	// Append assigns the op its sequence number and returns only after the
	// op is durable. An op whose ID is already recorded returns an error
	// matching ErrDuplicateOp: the earlier attempt was durable.
	Append(ctx context.Context, op *loyalty.Op) error
	// AppendRequest is Append for an op made by an API request other than
	// an offline redeem: the request's key and meta (the agent's record of
	// it) are stored in the op's own transaction, so one commit makes both
	// durable. A key already stored returns an error matching
	// ErrDuplicateRequest and appends nothing.
	AppendRequest(ctx context.Context, op *loyalty.Op, key string, meta []byte) error
	// Request returns what AppendRequest stored for key and the op it made;
	// found is false when there is none.
	Request(ctx context.Context, key string) (meta []byte, op loyalty.Op, found bool, err error)
	// Op returns a recorded op of this terminal by ID.
	Op(ctx context.Context, id loyalty.OpID) (op loyalty.Op, found bool, err error)
	// View returns the card's local view: the cached member snapshot with
	// this terminal's unacknowledged ops applied. known is false when the
	// terminal holds no snapshot of the card.
	View(ctx context.Context, card loyalty.CardHash) (view loyalty.Snapshot, known bool, err error)
	// CheckRedeem applies the redeem policy for points at now, with the
	// stricter offline rules when offline is true. Refusals match
	// ErrUnknownCard, ErrInsufficientPoints, ErrOfflineCapReached or
	// ErrSnapshotTooOld.
	CheckRedeem(ctx context.Context, card loyalty.CardHash, points loyalty.Points, offline bool, now time.Time) error
}

// ReceiptInput is what the loyalty block of a receipt is built from.
type ReceiptInput struct {
	Op      loyalty.Op
	Card    loyalty.CardToken // shown masked
	Known   bool              // false: the card has no snapshot on this terminal
	Member  loyalty.Snapshot  // the member after the op
	Reasons []loyalty.Reason
	Reward  string         // the reward's name, for a redeem
	Rules   *loyalty.Rules // the rules in use, for reward names
	Offline bool
}

// Receipt is a rendered loyalty block.
type Receipt struct {
	Text   string // for POS apps that print themselves, and previews
	ESCPOS []byte // for the printer
}

// Receipts renders the loyalty block (package receipt).
type Receipts interface {
	Render(in ReceiptInput) (Receipt, error)
}

// ReceiptPreviews renders the loyalty block as a picture for the cashier
// screen; a Receipts may implement it. It runs when the screen asks for a
// preview, never on the checkout path.
type ReceiptPreviews interface {
	PNG(in ReceiptInput) ([]byte, error)
}

// Printer prints ESC/POS jobs (devices/printer). A job ID printed once is
// never printed again, whatever retries happen.
type Printer interface {
	Print(ctx context.Context, jobID string, data []byte) error
}

// SyncState is the uplink's report: what the cashier's offline banner and
// the metrics show.
type SyncState struct {
	Online      bool      `json:"online"`
	BacklogOps  int       `json:"backlog_ops"`
	OldestOp    time.Time `json:"oldest_op,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// Uplink reports the sync state (sync/uplink).
type Uplink interface {
	State() SyncState
}

// Peer is another terminal of the store, as the store's gossip sees it.
type Peer struct {
	Terminal string `json:"terminal"`
	Addr     string `json:"addr,omitempty"`
	Status   string `json:"status"`  // alive, leaving, left, failed
	Online   bool   `json:"online"`  // it reaches the cloud
	Backlog  int    `json:"backlog"` // its ops the cloud has not acknowledged
}

// Peers lists the store's other terminals (offline peers); optional.
type Peers interface {
	Peers() []Peer
}

// DeviceHealth is one device's health as the cashier sees it.
type DeviceHealth struct {
	Device string    `json:"device"` // stable identity, e.g. "printer:04b8:0202:SN123"
	Kind   string    `json:"kind"`   // scanner, nfc, printer
	State  string    `json:"state"`  // closed, idle, busy, error
	Power  string    `json:"power"`  // online, offline, unknown
	Code   string    `json:"code"`   // stable error code, "ok" when healthy
	Reason string    `json:"reason"` // for the cashier: "Printer: paper out"
	At     time.Time `json:"at"`
}

// OK reports whether the device works.
func (h DeviceHealth) OK() bool { return h.State == "idle" || h.State == "busy" }
