package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
)

// deviceCode returns the health code and reason /v1/status gives for the
// till's device of kind.
func deviceCode(ctx context.Context, tl *till, kind string) (code, reason string, err error) {
	st, err := tl.agent.Status(ctx)
	if err != nil {
		return "", "", err
	}
	for _, d := range st.Devices {
		if d.Kind == kind {
			return d.Code, d.Reason, nil
		}
	}
	return "", "", fmt.Errorf("no %s among %d devices in /v1/status", kind, len(st.Devices))
}

// waitDevice waits until /v1/status shows the till's device of kind with code.
func waitDevice(ctx context.Context, t *testing.T, tl *till, kind, code string, d time.Duration) string {
	t.Helper()
	var reason string
	harness.Eventually(t, d, fmt.Sprintf("%s health %q in /v1/status", kind, code), func() (bool, string) {
		got, r, err := deviceCode(ctx, tl, kind)
		if err != nil {
			return false, err.Error()
		}
		reason = r
		return got == code, fmt.Sprintf("got %q (%s)", got, r)
	})
	return reason
}

// session is GET /v1/session as the tests read it.
type session struct {
	Open   bool   `json:"open"`
	ID     string `json:"id"`
	Card   string `json:"card"`
	Source string `json:"source"`
	Known  bool   `json:"known"`
}

// waitSession waits until the till's open session came from source and
// shows a card ending in last4.
func waitSession(ctx context.Context, t *testing.T, tl *till, source, last4 string, after string) session {
	t.Helper()
	var s session
	harness.Eventually(t, 15*time.Second, "a "+source+" session for the card", func() (bool, string) {
		r, err := tl.agent.Do(ctx, "GET", "/v1/session", "", nil)
		if err != nil {
			return false, err.Error()
		}
		s = session{}
		if err := r.Decode(&s); err != nil {
			return false, err.Error()
		}
		ok := s.Open && s.Source == source && len(s.Card) >= 4 && s.Card[len(s.Card)-4:] == last4 && s.ID != after
		return ok, r.String()
	})
	return s
}
