package peers

import (
	"context"
	"fmt"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// FromJournal makes a terminal's journal (offline/journal) the Journal
// Peers records into: peer redeems go to its peer_redeems table, which its
// offline policy counts against the card's allowance, and Covered drops
// them there (it is a PeerOpDropper too).
func FromJournal(j *journal.Journal) Journal { return journalAdapter{j: j} }

type journalAdapter struct{ j *journal.Journal }

var (
	_ Journal       = journalAdapter{}
	_ PeerOpDropper = journalAdapter{}
)

// ownPage is how many ops AnnounceUnacked reads at a time.
const ownPage = 500

// RecordPeerRedeem records r once (journal.PutPeerRedeem).
func (a journalAdapter) RecordPeerRedeem(ctx context.Context, r PeerRedeem) (bool, error) {
	return a.j.PutPeerRedeem(ctx, journal.PeerRedeem{
		ID: r.Op, Card: r.Card, Points: r.Points, Terminal: r.Terminal, Epoch: r.Epoch, Seq: r.Seq, At: r.At,
	})
}

// OfflineRedeemed is the journal's own figure, the one its offline policy
// counts: this terminal's offline redeems its snapshot cannot hold plus
// every peer redeem recorded.
func (a journalAdapter) OfflineRedeemed(ctx context.Context, card loyalty.CardHash) (loyalty.Points, error) {
	return a.j.OfflineRedeemed(ctx, card)
}

// DropPeerRedeems removes peer redeems a cloud snapshot covers.
func (a journalAdapter) DropPeerRedeems(ctx context.Context, ids []loyalty.OpID) error {
	return a.j.DropPeerRedeems(ctx, ids)
}

// AnnounceUnacked announces again this terminal's offline redeems the cloud
// has not acknowledged, from its journal: after a restart Peers remembers
// none of them, yet a till that joins later, or one that missed them, must
// count them. Call it once the agent has opened its journal; before Start
// they are kept and go out when the terminal joins. It returns how many
// redeems it announced.
func (p *Peers) AnnounceUnacked(ctx context.Context, j *journal.Journal) (int, error) {
	epoch, seq, err := j.Acked(ctx)
	if err != nil {
		return 0, fmt.Errorf("announce unacknowledged offline redeems: %w", err)
	}
	n := 0
	for {
		ops, err := j.OpsAfter(ctx, epoch, seq, ownPage)
		if err != nil {
			return n, fmt.Errorf("announce unacknowledged offline redeems: %w", err)
		}
		for i := range ops {
			op := &ops[i]
			if op.Kind != loyalty.OpRedeem || !op.Offline || op.Terminal != p.cfg.Terminal {
				continue
			}
			if err := p.Broadcast(ctx, op); err != nil {
				return n, err
			}
			n++
		}
		if len(ops) < ownPage {
			return n, nil
		}
		epoch, seq = ops[len(ops)-1].Epoch, ops[len(ops)-1].Seq
	}
}
