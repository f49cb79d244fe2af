package peers_test

import (
	"context"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/offline/peers"
)

// A till restarted during an outage remembers nothing of its gossip, yet
// its redeems still count: AnnounceUnacked announces them again from its
// journal, and a till that was away when they were made (and rejoins from
// its serf snapshot) learns them, once.
func TestRestartedTillAnnouncesItsUnackedRedeemsToALateTill(t *testing.T) {
	tills := newCluster(t, clusterOpts{n: 2, isolatedCap: 1000, threshold: 1000})
	a, b := tills[0], tills[1]
	card := testCard(t, "2012345679016")
	ctx := context.Background()

	b.stop(t)
	waitFor(t, 10*time.Second, "A sees B gone", func() bool { return a.p.AlivePeers() == 0 })
	_, op, err := a.redeem(t, card, 100, 1000)
	if err != nil {
		t.Fatalf("A redeems alone: %v", err)
	}

	a.stop(t)
	a.start(t, func(p *peers.Peers) {
		n, err := p.AnnounceUnacked(ctx, a.j.(*sqlJournal).j)
		if err != nil || n != 1 {
			t.Fatalf("A announces its unacknowledged redeems after the restart: got %d, %v; want 1", n, err)
		}
	})
	b.start(t, nil) // rejoins A (its seed, and the alive nodes of its serf snapshot)
	waitFor(t, 15*time.Second, "B rejoins A", func() bool { return b.p.AlivePeers() == 1 })
	waitFor(t, 15*time.Second, "B learns the redeem A made while B was away", func() bool { return b.j.hasPeerOp(card, op.ID) })
	got, err := b.j.OfflineRedeemed(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if got != 100 {
		t.Errorf("B counts %d points redeemed store-wide, want A's 100 once", got)
	}
}
