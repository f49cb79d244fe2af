package agenttest

import (
	"time"

	"github.com/tillpoint/tillpoint/offline/peers"
)

// FastPeers shortens serf's timings as offline/peers' own tests do, so a
// store of a few tills converges in well under a second under -race.
func FastPeers(c *peers.Config) {
	c.Timing = peers.Timing{
		GossipInterval: 50 * time.Millisecond, ProbeInterval: 300 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond,
		SuspicionMult: 2, PushPullInterval: time.Second, TCPTimeout: 500 * time.Millisecond,
		ReconnectInterval: 150 * time.Millisecond, ReapInterval: time.Second, BroadcastTimeout: 200 * time.Millisecond,
	}
	c.RetryJoinInterval, c.ReannounceEvery, c.LeaveTimeout = 100*time.Millisecond, 100*time.Millisecond, 300*time.Millisecond
}
