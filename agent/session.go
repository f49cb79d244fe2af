package agent

import (
	"context"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Card sources.
const (
	SourceScanner = "scanner"
	SourceNFC     = "nfc"
	SourceAPI     = "api"
)

// session is the current checkout: the card presented for the customer at
// the till, until the basket is posted or it idles.
type session struct {
	id      string
	card    loyalty.CardToken
	hash    loyalty.CardHash
	source  string
	opened  time.Time
	touched time.Time
	quote   *Quote
}

// SessionView is the session as the screen and the API show it.
type SessionView struct {
	Open       bool             `json:"open"`
	ID         string           `json:"id,omitempty"`
	Card       string           `json:"card,omitempty"` // masked
	Source     string           `json:"source,omitempty"`
	Known      bool             `json:"known"`
	Member     loyalty.MemberID `json:"member,omitempty"`
	Balance    loyalty.Points   `json:"balance"`
	Tier       string           `json:"tier,omitempty"`
	NextTier   string           `json:"next_tier,omitempty"`
	ToNextTier loyalty.Points   `json:"to_next_tier,omitempty"`
	Notice     string           `json:"notice,omitempty"`
	Quote      *Quote           `json:"quote,omitempty"`
	Opened     time.Time        `json:"opened,omitzero"`
	// Closed says why a session ended: posted, idle, replaced, cleared.
	Closed string `json:"closed,omitempty"`
}

// Quote is what the current basket would earn.
type Quote struct {
	Points  loyalty.Points   `json:"points"`
	Reasons []loyalty.Reason `json:"reasons,omitempty"`
	Total   loyalty.Money    `json:"total"`
}

// PresentCard opens a checkout session for a card read by a scanner, an
// NFC reader or given through the API. A card presented while another
// session is open replaces it.
func (a *Agent) PresentCard(ctx context.Context, card loyalty.CardToken, source string) (SessionView, error) {
	if card.IsZero() {
		return SessionView{}, Errorf(CodeInvalid, "No card was read; present the card again.")
	}
	now := a.now()
	id, err := loyalty.NewOpID(now, a.rand)
	if err != nil {
		return SessionView{}, &Error{Code: CodeInternal, Message: "Could not open a session; present the card again.", Err: err}
	}
	s := &session{id: id.String(), card: card, hash: card.Hash(a.key), source: source, opened: now, touched: now}
	a.mu.Lock()
	old := a.sess
	a.sess = s
	a.mu.Unlock()
	if old != nil {
		a.publish(EventSession, SessionView{ID: old.id, Closed: "replaced"})
	}
	a.m.cards.Inc(source)
	a.log.Info("card presented", keyCard, card, keySource, source)
	v := a.sessionView(ctx, s, "")
	a.publish(EventSession, v)
	return v, nil
}

// Session returns the open session, if any.
func (a *Agent) Session(ctx context.Context) SessionView {
	a.mu.Lock()
	s := a.sess
	a.mu.Unlock()
	if s == nil {
		return SessionView{}
	}
	return a.sessionView(ctx, s, "")
}

// ClearSession closes the open session (the cashier cancelled it).
func (a *Agent) ClearSession() { a.closeSession("", "cleared") }

// closeSession closes the session with the given ID ("" for any).
func (a *Agent) closeSession(id, why string) {
	a.mu.Lock()
	s := a.sess
	if s == nil || (id != "" && s.id != id) {
		a.mu.Unlock()
		return
	}
	a.sess = nil
	a.mu.Unlock()
	a.publish(EventSession, SessionView{ID: s.id, Closed: why})
}

func (a *Agent) expireSession(now time.Time) {
	a.mu.Lock()
	s := a.sess
	idle := s != nil && now.Sub(s.touched) >= time.Duration(a.idle.Load())
	a.mu.Unlock()
	if idle {
		a.closeSession(s.id, "idle")
	}
}

// currentSession returns the open session and marks it used.
func (a *Agent) currentSession() *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess != nil {
		a.sess.touched = a.now()
	}
	return a.sess
}

func (a *Agent) sessionView(ctx context.Context, s *session, notice string) SessionView {
	v := SessionView{Open: true, ID: s.id, Card: s.card.String(), Source: s.source, Opened: s.opened, Quote: s.quote}
	snap, known, err := a.view(ctx, s.hash)
	switch {
	case err != nil:
		a.log.Warn("member view", keyCard, s.card, keyErr, err)
		v.Notice = "This till cannot read the card's balance right now; points will still be recorded."
	case known:
		v.Known, v.Member, v.Balance, v.Tier, v.NextTier, v.ToNextTier = true, snap.Member, snap.Balance, snap.Tier, snap.NextTier, snap.ToNextTier
	case a.offline():
		v.Notice = msgUnknownCardOffline
	default:
		v.Notice = msgUnknownCardOnline
	}
	if notice != "" {
		v.Notice = notice
	}
	return v
}

// QuoteBasket computes what a basket would earn for the open session's
// member (or a cardless purchase), without recording anything, and shows
// it on the cashier screen.
func (a *Agent) QuoteBasket(ctx context.Context, b loyalty.Basket) (*Quote, error) {
	rules := a.rules.Load()
	if rules == nil {
		return nil, errNoRules
	}
	s := a.currentSession()
	var snap loyalty.Snapshot
	if s != nil {
		if v, known, err := a.view(ctx, s.hash); err == nil && known {
			snap = v
		}
	}
	pts, reasons, err := rules.Earn(b, snap, a.now())
	if err != nil {
		return nil, &Error{Code: CodeInvalid, Message: "The basket cannot be scored: " + err.Error(), Err: err}
	}
	q := &Quote{Points: pts, Reasons: reasons, Total: b.Total()}
	if s != nil {
		a.mu.Lock()
		if a.sess == s {
			s.quote = q
		}
		a.mu.Unlock()
	}
	a.publish(EventBasket, q)
	return q, nil
}
