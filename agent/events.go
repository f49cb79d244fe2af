package agent

import (
	"encoding/json"
	"sync"
	"time"
)

// Event types on the stream the cashier screen and POS apps read.
const (
	EventState    = "state"    // the whole screen state; first event of every subscription
	EventSession  = "session"  // a card was presented, or the session closed
	EventBasket   = "basket"   // points quoted for the current basket
	EventCheckout = "checkout" // an op was recorded (earn, redeem, void, enroll)
	EventDevice   = "device"   // a device's health changed
	EventSync     = "sync"     // the uplink's state changed
)

// Event is one message on the stream; Data marshals to JSON.
type Event struct {
	ID   uint64
	Type string
	Data any
	At   time.Time
}

// JSON returns the event's data as JSON.
func (e Event) JSON() []byte {
	b, err := json.Marshal(e.Data)
	if err != nil {
		return []byte(`{}`)
	}
	return b
}

// hub fans events out to subscribers. A subscriber that falls behind is
// dropped (its channel closed): the screen reconnects and gets a fresh state.
type hub struct {
	mu     sync.Mutex
	nextID uint64
	subs   map[chan Event]struct{}
	closed bool
}

const subscriberBuffer = 64

func newHub() *hub { return &hub{subs: map[chan Event]struct{}{}} }

func (h *hub) publish(typ string, data any, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextID++
	e := Event{ID: h.nextID, Type: typ, Data: data, At: at}
	for c := range h.subs {
		select {
		case c <- e:
		default:
			delete(h.subs, c)
			close(c)
		}
	}
}

// subscribe returns a channel of events starting with first (built under
// the hub's lock, so no event is lost between the state and the stream).
func (h *hub) subscribe(first func() (string, any), at time.Time) (<-chan Event, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(chan Event, subscriberBuffer)
	if h.closed {
		close(c)
		return c, func() {}
	}
	typ, data := first()
	h.nextID++
	c <- Event{ID: h.nextID, Type: typ, Data: data, At: at}
	h.subs[c] = struct{}{}
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[c]; ok {
			delete(h.subs, c)
			close(c)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}
