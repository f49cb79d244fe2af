package peers

import (
	"context"
	"fmt"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// FromJournal makes a terminal's journal (offline/journal) the Journal
// Peers records into: peer redeems go to its peer_redeems table, which its
// offline policy counts against the card's allowance.
func FromJournal(j *journal.Journal) Journal { return journalAdapter{j: j} }

type journalAdapter struct{ j *journal.Journal }

var _ Journal = journalAdapter{}

// ownPage is how many unacknowledged ops OfflineRedeemed reads at a time.
const ownPage = 500

// RecordPeerRedeem records r once; the journal also ignores a redeem its
// snapshot of the card already covers (isNew false then too).
func (a journalAdapter) RecordPeerRedeem(ctx context.Context, r PeerRedeem) (bool, error) {
	return a.j.PutPeerRedeem(ctx, journal.PeerRedeem{
		ID: r.Op, Card: r.Card, Points: r.Points, Terminal: r.Terminal, Epoch: r.Epoch, Seq: r.Seq, At: r.At,
	})
}

// OfflineRedeemed adds the peer redeems the journal holds for card (those
// no snapshot covers) and this terminal's offline redeems of card the cloud
// has not acknowledged. It reads the unacknowledged ops, so its cost grows
// with the backlog; it runs only on the offline path.
func (a journalAdapter) OfflineRedeemed(ctx context.Context, card loyalty.CardHash) (loyalty.Points, error) {
	var total loyalty.Points
	rs, err := a.j.PeerRedeems(ctx, card)
	if err != nil {
		return 0, fmt.Errorf("offline redeems of card %s: %w", card.Short(), err)
	}
	for _, r := range rs {
		total += r.Points
	}
	epoch, seq, err := a.j.Acked(ctx)
	if err != nil {
		return 0, fmt.Errorf("offline redeems of card %s: %w", card.Short(), err)
	}
	for {
		ops, err := a.j.OpsAfter(ctx, epoch, seq, ownPage)
		if err != nil {
			return 0, fmt.Errorf("offline redeems of card %s: %w", card.Short(), err)
		}
		for _, op := range ops {
			if op.Card == card && op.Kind == loyalty.OpRedeem && op.Offline {
				total -= op.Points
			}
		}
		if len(ops) < ownPage {
			return total, nil
		}
		last := ops[len(ops)-1]
		epoch, seq = last.Epoch, last.Seq
	}
}
