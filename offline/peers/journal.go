package peers

import (
	"context"
	"fmt"
	"sync"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// FromJournal makes a terminal's journal (offline/journal) the Journal
// Peers records into: peer redeems go to its peer_redeems table, which its
// offline policy counts against the card's allowance.
func FromJournal(j *journal.Journal) Journal { return &journalAdapter{j: j} }

// journalAdapter remembers the terminal's own unacknowledged offline
// redeems as it reads them, so each OfflineRedeemed reads only the ops
// appended since the last call, not the whole backlog of an outage.
type journalAdapter struct {
	j *journal.Journal

	mu      sync.Mutex
	scanned position    // last op read from the journal
	own     []ownRedeem // offline redeems after the acknowledged watermark, in journal order
}

type position struct {
	epoch uint32
	seq   uint64
}

func (p position) after(q position) bool {
	return p.epoch > q.epoch || (p.epoch == q.epoch && p.seq > q.seq)
}

type ownRedeem struct {
	at     position
	card   loyalty.CardHash
	points loyalty.Points
}

var _ Journal = (*journalAdapter)(nil)

// ownPage is how many ops OfflineRedeemed reads at a time.
const ownPage = 500

// RecordPeerRedeem records r once; the journal also ignores a redeem its
// snapshot of the card already covers (isNew false then too).
func (a *journalAdapter) RecordPeerRedeem(ctx context.Context, r PeerRedeem) (bool, error) {
	return a.j.PutPeerRedeem(ctx, journal.PeerRedeem{
		ID: r.Op, Card: r.Card, Points: r.Points, Terminal: r.Terminal, Epoch: r.Epoch, Seq: r.Seq, At: r.At,
	})
}

// OfflineRedeemed adds the peer redeems the journal holds for card (those
// no snapshot covers) and this terminal's offline redeems of card the cloud
// has not acknowledged.
func (a *journalAdapter) OfflineRedeemed(ctx context.Context, card loyalty.CardHash) (loyalty.Points, error) {
	rs, err := a.j.PeerRedeems(ctx, card)
	if err != nil {
		return 0, fmt.Errorf("offline redeems of card %s: %w", card.Short(), err)
	}
	var total loyalty.Points
	for _, r := range rs {
		total += r.Points
	}
	ackEpoch, ackSeq, err := a.j.Acked(ctx)
	if err != nil {
		return 0, fmt.Errorf("offline redeems of card %s: %w", card.Short(), err)
	}
	acked := position{ackEpoch, ackSeq}

	a.mu.Lock()
	defer a.mu.Unlock()
	keep := a.own[:0]
	for _, o := range a.own {
		if o.at.after(acked) {
			keep = append(keep, o)
		}
	}
	a.own = keep
	if acked.after(a.scanned) {
		a.scanned = acked
	}
	for {
		ops, err := a.j.OpsAfter(ctx, a.scanned.epoch, a.scanned.seq, ownPage)
		if err != nil {
			return 0, fmt.Errorf("offline redeems of card %s: %w", card.Short(), err)
		}
		for _, op := range ops {
			if op.Kind == loyalty.OpRedeem && op.Offline {
				a.own = append(a.own, ownRedeem{at: position{op.Epoch, op.Seq}, card: op.Card, points: -op.Points})
			}
		}
		if len(ops) > 0 {
			last := ops[len(ops)-1]
			a.scanned = position{last.Epoch, last.Seq}
		}
		if len(ops) < ownPage {
			break
		}
	}
	for _, o := range a.own {
		if o.card == card {
			total += o.points
		}
	}
	return total, nil
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
