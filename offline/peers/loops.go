package peers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"
)

// Tag names this package publishes (each short: serf's tags share 512 bytes).
const (
	TagTerminal = "tid"
	TagVersion  = "ver"
	TagOnline   = "on"
	TagBacklog  = "bl"
	TagAcked    = "ack" // "epoch.seq" the cloud acknowledged
)

func (p *Peers) tagsLocked() map[string]string {
	on := "0"
	if p.state.Online {
		on = "1"
	}
	return map[string]string{
		TagTerminal: p.cfg.Terminal,
		TagVersion:  p.cfg.Version,
		TagOnline:   on,
		TagBacklog:  strconv.Itoa(p.state.Backlog),
		TagAcked:    fmt.Sprintf("%d.%d", p.state.Acked.Epoch, p.state.Acked.Seq),
	}
}

func parseWatermark(s string) (Watermark, bool) {
	e, q, ok := strings.Cut(s, ".")
	if !ok {
		return Watermark{}, false
	}
	epoch, err1 := strconv.ParseUint(e, 10, 32)
	seq, err2 := strconv.ParseUint(q, 10, 64)
	if err1 != nil || err2 != nil {
		return Watermark{}, false
	}
	return Watermark{Epoch: uint32(epoch), Seq: seq}, true
}

// runEvents handles what serf delivers. It must never call back into serf's
// UserEvent or Query: serf delivers those on this very channel.
func (p *Peers) runEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-p.events:
			switch e := e.(type) {
			case serf.UserEvent:
				if e.Name == EventName {
					p.receive(ctx, e.Payload)
				}
			case *serf.Query:
				if e.Name == QueryName {
					p.answer(ctx, e)
				}
			case serf.MemberEvent:
				p.memberEvent(e)
			}
		}
	}
}

// receive verifies one event and records it once. It reports whether the
// journal recorded it just now.
func (p *Peers) receive(ctx context.Context, raw []byte) (recorded bool) {
	p.mu.Lock()
	roster := p.roster
	p.mu.Unlock()
	r, err := VerifyEvent(p.cfg.Store, roster, raw)
	if err != nil {
		p.mu.Lock()
		p.stats.Rejected++
		p.mu.Unlock()
		p.log.Warn("ignored a redeem event from the store network", logErr, err)
		return false
	}
	if r.Terminal == p.cfg.Terminal {
		return false // our own: in our journal already
	}
	p.mu.Lock()
	_, seen := p.known[r.Op]
	_, dropped := p.gone[r.Op]
	if seen || dropped {
		p.stats.Duplicates++
		p.mu.Unlock()
		return false
	}
	p.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, p.cfg.RecordTimeout)
	isNew, err := p.journal.RecordPeerRedeem(rctx, r)
	cancel()
	if err != nil {
		// Not remembered as known: runReannounce retries it (serf will not
		// deliver the same event twice), and so does any later copy.
		p.mu.Lock()
		p.stats.Failed++
		if len(p.retry) < maxRetry {
			p.retry[r.Op] = append([]byte(nil), raw...)
		}
		p.mu.Unlock()
		p.log.Error("record a peer's offline redeem in the journal; it will be retried when the event comes again",
			logOp, r.Op.String(), logPeer, r.Terminal, logErr, err)
		return false
	}
	p.mu.Lock()
	delete(p.retry, r.Op)
	if _, ok := p.known[r.Op]; !ok {
		p.known[r.Op] = &knownEvent{ev: Event{Redeem: r, Raw: append([]byte(nil), raw...)}, learned: p.cfg.Now()}
	}
	if isNew {
		p.stats.Recorded++
	} else {
		p.stats.Duplicates++
	}
	p.mu.Unlock()
	if isNew {
		p.log.Info("recorded a peer's offline redeem", logOp, r.Op.String(), logPeer, r.Terminal,
			logCard, r.Card.Short(), logPoints, int64(r.Points))
	}
	return isNew
}

func (p *Peers) memberEvent(e serf.MemberEvent) {
	now := p.cfg.Now()
	rejoined := false
	p.mu.Lock()
	for _, m := range e.Members {
		if m.Name == p.cfg.Terminal {
			continue
		}
		if wm, ok := parseWatermark(m.Tags[TagAcked]); ok {
			if prev, ok := p.acks[m.Name]; !ok || prev.wm != wm {
				p.acks[m.Name] = ackSeen{wm: wm, at: now}
			}
		}
		if e.Type == serf.EventMemberJoin {
			rejoined = true
		}
	}
	p.mu.Unlock()
	if rejoined {
		p.triggerReannounce()
	}
}

func (p *Peers) triggerReannounce() {
	select {
	case p.reannounce <- struct{}{}:
	default:
	}
}

// maxRetry bounds the events kept for another try at the journal.
const maxRetry = 1024

// reannounceAgainAfter is how many ReannounceEvery periods after a
// re-announcement it is made once more: the first can reach a till that
// is still joining, whose serf Join(ignoreOld) then drops it.
const reannounceAgainAfter = 5

// runReannounce broadcasts this terminal's own redeems again when members
// join or come back: a till that was cut off missed them, and serf's Join
// ignores events sent before it joined. Each re-announcement is repeated
// once a few periods later, in case it raced the other till's join. Every
// ReannounceEvery it also retries the events the journal failed to record.
func (p *Peers) runReannounce(ctx context.Context) {
	tick := time.NewTicker(p.cfg.ReannounceEvery)
	defer tick.Stop()
	var last, repeatAt time.Time
	pending := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.reannounce:
			pending = true
		case now := <-tick.C:
			p.retryFailed(ctx)
			if !repeatAt.IsZero() && !now.Before(repeatAt) {
				p.announceOwn()
				repeatAt = time.Time{}
			}
		}
		// At most one re-announcement per ReannounceEvery; a request in
		// between waits for the next tick.
		if pending && time.Since(last) >= p.cfg.ReannounceEvery {
			p.announceOwn()
			last, pending = time.Now(), false
			repeatAt = last.Add(reannounceAgainAfter * p.cfg.ReannounceEvery)
		}
	}
}

func (p *Peers) retryFailed(ctx context.Context) {
	p.mu.Lock()
	raws := make([][]byte, 0, len(p.retry))
	for _, raw := range p.retry {
		raws = append(raws, raw)
	}
	p.mu.Unlock()
	for _, raw := range raws {
		p.receive(ctx, raw)
	}
}

func (p *Peers) announceOwn() {
	p.mu.Lock()
	s := p.serf
	var raws [][]byte
	for _, k := range p.known {
		if k.own {
			raws = append(raws, k.ev.Raw)
		}
	}
	p.mu.Unlock()
	if s == nil || len(raws) == 0 {
		return
	}
	n := 0
	for _, raw := range raws {
		if err := s.UserEvent(EventName, raw, false); err != nil {
			p.log.Warn("re-announce an offline redeem", logErr, err)
			continue
		}
		n++
	}
	p.mu.Lock()
	p.stats.Announced += n
	p.mu.Unlock()
	p.log.Debug("re-announced own offline redeems", logCount, n)
}

// runJoin joins the roster's terminals, and joins again whenever no peer is
// alive: at start (retry-join) and after a partition.
func (p *Peers) runJoin(ctx context.Context) {
	attempt := 0
	for {
		if _, err := p.running(); err != nil {
			return // shut down: serf refuses joins after its leave
		}
		if p.AlivePeers() == 0 {
			p.mu.Lock()
			addrs := append(p.roster.JoinAddrs(p.cfg.Terminal), p.cfg.Join...)
			s := p.serf
			p.mu.Unlock()
			if len(addrs) > 0 && s != nil {
				attempt++
				n, err := s.Join(addrs, true)
				switch {
				case n > 0:
					p.log.Info("joined store peers", logCount, n, logAttempt, attempt)
					attempt = 0
				case err != nil && !errors.Is(ctx.Err(), context.Canceled):
					lvl := p.log.Debug
					if attempt == 1 || attempt%12 == 0 {
						lvl = p.log.Warn
					}
					lvl("no store peer answered; retrying", logAddrs, addrs, logAttempt, attempt, logErr, err)
				}
			}
		}
		t := time.NewTimer(p.cfg.RetryJoinInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// AlivePeers returns how many other terminals of the roster serf believes
// alive. A member the roster does not list does not count: its word is
// worth nothing to the offline policy.
func (p *Peers) AlivePeers() int {
	s, err := p.running()
	if err != nil {
		return 0
	}
	p.mu.Lock()
	roster := p.roster
	p.mu.Unlock()
	n := 0
	for _, m := range s.Members() {
		if _, ok := roster.Key(m.Name); ok && m.Name != p.cfg.Terminal && m.Status == serf.StatusAlive {
			n++
		}
	}
	return n
}
