package screen_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/agent/screen"
)

func TestScreenIsServedFromTheBinary(t *testing.T) {
	for path, want := range map[string]string{"/": "offline-banner", "/screen.js": "EventSource", "/screen.css": "--ok"} {
		rec := httptest.NewRecorder()
		screen.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: got %d, want 200 with %q", path, rec.Code, want)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q, want self only", path, csp)
		}
	}
}
