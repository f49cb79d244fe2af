package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// UplinkJournal fits offline/journal to what sync/uplink needs of it.
type UplinkJournal struct{ *journal.Journal }

var _ uplink.Journal = UplinkJournal{}

// MarkAcked moves the acknowledgement watermark; an ack ahead of the
// journal is uplink.ErrAckAhead, so the uplink starts a new epoch.
func (a UplinkJournal) MarkAcked(ctx context.Context, epoch uint32, seq uint64) error {
	err := a.Journal.MarkAcked(ctx, epoch, seq)
	if errors.Is(err, journal.ErrAckAhead) {
		return fmt.Errorf("%w: %w", uplink.ErrAckAhead, err)
	}
	return err
}

// Backlog returns the unacknowledged ops and the wall time of the oldest.
func (a UplinkJournal) Backlog(ctx context.Context) (int64, time.Time, error) {
	s, err := a.Stats(ctx)
	return s.Unacked, s.OldestUnacked, err
}

// Sealed lists the outbox.
func (a UplinkJournal) Sealed(ctx context.Context) ([]uplink.Sealed, error) {
	bs, err := a.Journal.Sealed(ctx)
	out := make([]uplink.Sealed, len(bs))
	for i, b := range bs {
		out[i] = uplink.Sealed{Epoch: b.Epoch, First: b.FirstSeq, Last: b.LastSeq, Bytes: b.Payload}
	}
	return out, err
}

// UplinkState reports a sync/uplink's state to the agent. With a Feed, a
// failing feed pull counts as offline too: a till with nothing to send
// still learns of an outage.
type UplinkState struct {
	U    *uplink.Uplink
	Feed *Feed
}

var _ Uplink = UplinkState{}

// State converts the uplink's state.
func (s UplinkState) State() SyncState {
	st := s.U.State()
	out := SyncState{Online: st.Online, BacklogOps: int(st.Backlog), OldestOp: st.Oldest,
		LastSuccess: st.LastSuccess, LastError: st.LastError}
	if s.Feed != nil {
		if err := s.Feed.Failing(); err != nil {
			out.Online, out.LastError = false, err.Error()
		}
	}
	return out
}
