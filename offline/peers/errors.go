package peers

import (
	"errors"
	"fmt"

	"github.com/tillpoint/tillpoint/loyalty"
)

// Errors returned by this package. Test for them with errors.Is.
var (
	// ErrMalformed reports event or query bytes that do not decode.
	ErrMalformed = errors.New("peers: malformed message")
	// ErrUnknownTerminal reports an event from a terminal not in the store roster.
	ErrUnknownTerminal = errors.New("peers: terminal not in the store roster")
	// ErrBadSignature reports an event whose signature does not verify
	// with the roster's key for the terminal it names.
	ErrBadSignature = errors.New("peers: bad signature")
	// ErrNotOfflineRedeem reports an op Broadcast cannot announce.
	ErrNotOfflineRedeem = errors.New("peers: not an offline redeem")
	// ErrIsolatedCapReached reports a redeem refused because this terminal
	// reaches neither the cloud nor any peer and the card would pass the
	// isolated cap. See *IsolatedCapError for the figures.
	ErrIsolatedCapReached = errors.New("peers: isolated redeem cap reached")
	// ErrNotStarted reports a call that needs the cluster before Start.
	ErrNotStarted = errors.New("peers: not started")
	// ErrShutdown reports a call after Shutdown.
	ErrShutdown = errors.New("peers: shut down")
	// ErrConfig reports an invalid configuration.
	ErrConfig = errors.New("peers: invalid config")
)

// IsolatedCapError is the refusal a cashier sees when the till is cut off
// from the cloud and does not hear enough of the store's other tills (see
// CheckRedeem).
type IsolatedCapError struct {
	Cap       loyalty.Points // IsolatedRedeemCap
	Redeemed  loyalty.Points // what the card already redeemed offline, as far as this till knows
	Requested loyalty.Points
	// Heard is how many other tills answered or were seen; 0 when none.
	Heard int
}

func (e *IsolatedCapError) Error() string {
	left := e.Cap - e.Redeemed
	if left < 0 {
		left = 0
	}
	why := "this till reaches neither the loyalty service nor the other tills"
	if e.Heard > 0 {
		why = "this till reaches no loyalty service and only some of the other tills"
	}
	return fmt.Sprintf("%s: "+
		"offline redeems on this card are limited to %d points here (%d used, %d left, %d asked); "+
		"redeem %d points or fewer, or ask the customer to redeem once the network is back",
		why, e.Cap, e.Redeemed, left, e.Requested, left)
}

// Unwrap lets errors.Is match ErrIsolatedCapReached.
func (e *IsolatedCapError) Unwrap() error { return ErrIsolatedCapReached }
