package peers

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/serf/serf"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Broadcast announces an offline redeem this terminal made (already durable
// in its journal) to the store. Announcing is best effort: an error says the
// event could not be queued, never that the redeem failed. Before Start the
// event is kept and announced once the terminal joins.
func (p *Peers) Broadcast(ctx context.Context, op *loyalty.Op) error {
	r, err := RedeemFromOp(op)
	if err != nil {
		return err
	}
	if r.Terminal != p.cfg.Terminal {
		return fmt.Errorf("%w: op %s was made by terminal %q, not this one (%q)", ErrNotOfflineRedeem, r.Op, r.Terminal, p.cfg.Terminal)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("announce op %s: %w", r.Op, err)
	}
	ev, err := SignEvent(p.cfg.Store, r, p.cfg.SigningKey)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return ErrShutdown
	}
	if _, ok := p.known[r.Op]; !ok {
		p.known[r.Op] = &knownEvent{ev: ev, own: true, learned: p.cfg.Now()}
	}
	s := p.serf
	p.mu.Unlock()
	if s == nil {
		return nil
	}
	if err := s.UserEvent(EventName, ev.Raw, false); err != nil {
		return fmt.Errorf("announce op %s to store peers: %w", r.Op, err)
	}
	p.mu.Lock()
	p.stats.Announced++
	p.mu.Unlock()
	return nil
}

// Check is what CheckRedeem found out before an offline redeem.
type Check struct {
	// Online is true when the terminal reaches the cloud: no peer check then.
	Online bool
	// Peers is how many other terminals of the roster serf believed alive
	// (alive or only suspected of failing).
	Peers int
	// Quorum is how many terminals, this one included, must be heard for
	// the terminal to count as connected: a majority of the roster's
	// terminals that did not leave the cluster gracefully.
	Quorum int
	// Asked is true when the peers were queried; Answered counts the live
	// peers that answered, Missing those that did not, and Learned the
	// peer redeems the answers taught this terminal.
	Asked    bool
	Answered int
	Missing  int
	Learned  int
	// Redeemed is what the card redeemed offline store-wide as far as this
	// terminal knows after asking: its journal's figure, or the largest a
	// peer reported when that is more.
	Redeemed loyalty.Points
	// Isolated is true when the terminal is not connected (see CheckRedeem):
	// IsolatedRedeemCap applied.
	Isolated bool
	// Took is how long the check took.
	Took time.Duration
}

// CheckRedeem runs before an offline redeem of points on card. At or above
// QueryThreshold it asks the store's live peers (never longer than
// QueryTimeout, nor past ctx's deadline) and records the signed redeems
// they answer with, so the journal's offline policy that runs next counts
// them.
//
// The terminal counts as connected, and only the journal's policy limits
// the redeem, when it sees at least one live peer, together with them
// forms a quorum of the roster (Check.Quorum), and, when it asked, every
// live peer answered. Otherwise it is isolated: it refuses a redeem that
// would take the card past IsolatedRedeemCap, with *IsolatedCapError. A
// partial answer is isolation: the peer that did not answer may be cut
// off and redeeming the same card (see the package doc for the bound).
func (p *Peers) CheckRedeem(ctx context.Context, card loyalty.CardHash, points loyalty.Points) (Check, error) {
	start := time.Now()
	var c Check
	if points <= 0 {
		return c, fmt.Errorf("%w: a redeem spends a positive number of points, got %d", ErrNotOfflineRedeem, points)
	}
	if p.State().Online {
		c.Online = true
		return c, nil
	}
	v := p.view()
	c.Peers, c.Quorum = len(v.alive), v.quorum()
	var reported loyalty.Points
	heard := c.Peers
	if c.Peers > 0 && points >= p.cfg.QueryThreshold {
		c.Asked = true
		answered, learned, rep, err := p.ask(ctx, card, v.alive)
		if err != nil {
			p.log.Warn("ask store peers about a card", logCard, card.Short(), logErr, err)
		}
		c.Learned, reported = learned, rep
		for _, id := range v.alive {
			if answered[id] {
				c.Answered++
			}
		}
		c.Missing = c.Peers - c.Answered
		heard = c.Answered
	}
	redeemed, err := p.journal.OfflineRedeemed(ctx, card)
	if err != nil {
		return c, fmt.Errorf("check offline redeems of card %s: %w", card.Short(), err)
	}
	c.Redeemed = max(redeemed, reported)
	c.Isolated = c.Peers == 0 || c.Missing > 0 || 1+heard < c.Quorum
	c.Took = time.Since(start)
	if c.Isolated {
		total, err := c.Redeemed.Add(points)
		if err != nil || total > p.cfg.IsolatedRedeemCap {
			return c, &IsolatedCapError{Cap: p.cfg.IsolatedRedeemCap, Redeemed: c.Redeemed, Requested: points, Heard: heard}
		}
	}
	return c, nil
}

// rosterView is the roster as serf sees it at one moment.
type rosterView struct {
	size  int      // terminals in the roster, this one included
	left  int      // other terminals serf saw leave gracefully
	alive []string // other terminals serf believes alive (or suspects)
}

// quorum is a majority of the terminals that did not leave gracefully.
func (v rosterView) quorum() int { return (v.size-v.left)/2 + 1 }

func (p *Peers) view() rosterView {
	p.mu.Lock()
	roster, s := p.roster, p.serf
	p.mu.Unlock()
	v := rosterView{size: roster.Len()}
	if _, ok := roster.Key(p.cfg.Terminal); !ok {
		v.size++
	}
	if s == nil {
		return v
	}
	for _, m := range s.Members() {
		if _, ok := roster.Key(m.Name); !ok || m.Name == p.cfg.Terminal {
			continue
		}
		switch m.Status {
		case serf.StatusAlive:
			v.alive = append(v.alive, m.Name)
		case serf.StatusLeft:
			v.left++
		}
	}
	return v
}

// ask queries the peers about card and records what they answer. It stops
// when every alive peer answered, at QueryTimeout, or when ctx ends; it
// returns the roster terminals that answered.
func (p *Peers) ask(ctx context.Context, card loyalty.CardHash, alive []string) (answered map[string]bool, learned int, reported loyalty.Points, err error) {
	answered = make(map[string]bool)
	s, err := p.running()
	if err != nil {
		return answered, 0, 0, err
	}
	timeout := p.cfg.QueryTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return answered, 0, 0, fmt.Errorf("ask peers: %w", context.DeadlineExceeded)
	}
	p.mu.Lock()
	p.stats.Queries++
	p.mu.Unlock()
	resp, err := s.Query(QueryName, encodeQuery(card), &serf.QueryParam{Timeout: timeout})
	if err != nil {
		return answered, 0, 0, fmt.Errorf("query store peers: %w", err)
	}
	defer resp.Close()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	waiting := make(map[string]bool, len(alive))
	for _, id := range alive {
		waiting[id] = true
	}
	for len(waiting) > 0 {
		select {
		case <-ctx.Done():
			return answered, learned, reported, fmt.Errorf("ask peers: %w", ctx.Err())
		case <-timer.C:
			return answered, learned, reported, nil
		case r, ok := <-resp.ResponseCh():
			if !ok {
				return answered, learned, reported, nil
			}
			p.mu.Lock()
			_, inRoster := p.roster.Key(r.From)
			p.mu.Unlock()
			if r.From == p.cfg.Terminal || answered[r.From] || !inRoster {
				continue // ours, a repeat, or a member the roster does not know
			}
			total, events, err := decodeAnswer(r.Payload)
			if err != nil {
				p.log.Warn("ignored a peer's answer", logPeer, r.From, logErr, err)
				continue
			}
			answered[r.From] = true
			delete(waiting, r.From)
			p.mu.Lock()
			p.stats.Answers++
			p.mu.Unlock()
			reported = max(reported, total)
			for _, raw := range events {
				if p.receive(ctx, raw) {
					learned++
				}
			}
		}
	}
	return answered, learned, reported, nil
}

// answer replies to a peer's question about a card: what this terminal's
// journal counts for it, and the signed events it holds for it, its own first.
func (p *Peers) answer(ctx context.Context, q *serf.Query) {
	if q.SourceNode() == p.cfg.Terminal {
		return
	}
	card, err := decodeQuery(q.Payload)
	if err != nil {
		p.log.Warn("ignored a malformed question from a peer", logPeer, q.SourceNode(), logErr, err)
		return
	}
	rctx, cancel := context.WithDeadline(ctx, q.Deadline())
	total, err := p.journal.OfflineRedeemed(rctx, card)
	cancel()
	if err != nil {
		p.log.Warn("answer a peer about a card", logPeer, q.SourceNode(), logCard, card.Short(), logErr, err)
		return
	}
	p.mu.Lock()
	var evs []*knownEvent
	for _, k := range p.known {
		if k.ev.Redeem.Card == card {
			evs = append(evs, k)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(evs, func(a, b *knownEvent) int {
		if a.own != b.own {
			if a.own {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.ev.Redeem.At.UnixMilli(), a.ev.Redeem.At.UnixMilli())
	})
	raws := make([][]byte, len(evs))
	for i, k := range evs {
		raws[i] = k.ev.Raw
	}
	if err := q.Respond(encodeAnswer(total, raws)); err != nil {
		p.log.Debug("answer a peer", logPeer, q.SourceNode(), logErr, err)
	}
}

// Covered tells Peers that a cloud snapshot of card was fetched by a request
// that started at fetchStarted (this terminal's clock). Every peer redeem of
// the card whose terminal had published, before then, a cloud watermark at
// or past the redeem is in that snapshot: Peers forgets it (replays stay
// ignored) and drops it from the journal when the journal can. It returns
// the op IDs dropped.
func (p *Peers) Covered(ctx context.Context, card loyalty.CardHash, fetchStarted time.Time) ([]loyalty.OpID, error) {
	p.mu.Lock()
	var ids []loyalty.OpID
	for id, k := range p.known {
		r := k.ev.Redeem
		if k.own || r.Card != card {
			continue
		}
		a, ok := p.acks[r.Terminal]
		if ok && a.wm.Covers(r.Epoch, r.Seq) && a.at.Before(fetchStarted) {
			ids = append(ids, id)
		}
	}
	p.mu.Unlock()
	if len(ids) == 0 {
		return nil, nil
	}
	if d, ok := p.journal.(PeerOpDropper); ok {
		if err := d.DropPeerRedeems(ctx, ids); err != nil {
			return nil, fmt.Errorf("drop peer redeems a snapshot covers: %w", err)
		}
	}
	now := p.cfg.Now()
	p.mu.Lock()
	for _, id := range ids {
		delete(p.known, id)
		p.gone[id] = now
	}
	p.stats.Dropped += len(ids)
	p.mu.Unlock()
	slices.SortFunc(ids, func(a, b loyalty.OpID) int { return cmp.Compare(a.String(), b.String()) })
	return ids, nil
}

// Wire format of the question and the answer.
const (
	queryVersion = 1
	queryLen     = 1 + 32
	// answerBudget keeps an answer inside serf's 1024-byte response limit
	// with room for serf's framing (node name, times, flags).
	answerBudget = 800
)

func encodeQuery(card loyalty.CardHash) []byte {
	return append([]byte{queryVersion}, card[:]...)
}

func decodeQuery(b []byte) (loyalty.CardHash, error) {
	var card loyalty.CardHash
	if len(b) != queryLen || b[0] != queryVersion {
		return card, fmt.Errorf("%w: question of %d bytes (version %d), want %d bytes of version %d", ErrMalformed, len(b), firstByte(b), queryLen, queryVersion)
	}
	copy(card[:], b[1:])
	return card, nil
}

// encodeAnswer writes version, the reported total, then as many
// length-prefixed events as fit answerBudget.
func encodeAnswer(total loyalty.Points, events [][]byte) []byte {
	b := make([]byte, 0, answerBudget)
	b = append(b, queryVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(max(total, 0)))
	for _, ev := range events {
		if len(b)+2+len(ev) > answerBudget {
			break
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(ev)))
		b = append(b, ev...)
	}
	return b
}

func decodeAnswer(b []byte) (loyalty.Points, [][]byte, error) {
	if len(b) < 9 || b[0] != queryVersion || len(b) > answerBudget {
		return 0, nil, fmt.Errorf("%w: answer of %d bytes (version %d)", ErrMalformed, len(b), firstByte(b))
	}
	total := binary.BigEndian.Uint64(b[1:9])
	if total > 1<<62 {
		return 0, nil, fmt.Errorf("%w: answer reports %d points", ErrMalformed, total)
	}
	var events [][]byte
	for rest := b[9:]; len(rest) > 0; {
		if len(rest) < 2 {
			return 0, nil, fmt.Errorf("%w: answer ends inside a length", ErrMalformed)
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if n > len(rest) || n > MaxEventLen {
			return 0, nil, fmt.Errorf("%w: answer holds a %d-byte event", ErrMalformed, n)
		}
		events = append(events, rest[:n])
		rest = rest[n:]
	}
	return loyalty.Points(total), events, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}
