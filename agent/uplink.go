package agent

import (
	"github.com/tillpoint/tillpoint/sync/uplink"
)

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
	// An uplink that has not failed yet counts as online until it does.
	online := st.Online || st.LastErrorAt.IsZero()
	out := SyncState{Online: online, BacklogOps: int(st.Backlog), OldestOp: st.Oldest,
		LastSuccess: st.LastSuccess, LastError: st.LastError}
	if s.Feed != nil {
		if err := s.Feed.Failing(); err != nil {
			out.Online, out.LastError = false, err.Error()
		}
	}
	return out
}
