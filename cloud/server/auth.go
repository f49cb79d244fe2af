package server

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// authTerminal checks a signed request and returns the terminal that sent
// it. A replay is bounded by RequestClockSkew and can only fetch again what
// the terminal may read anyway.
func (s *Server) authTerminal(r *http.Request) (cloud.Terminal, error) {
	id := r.Header.Get(batch.HeaderTerminal)
	ts := r.Header.Get(batch.HeaderTimestamp)
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(batch.HeaderSignature))
	if id == "" || ts == "" || err != nil || len(sig) != ed25519.SignatureSize {
		p := problem(CodeUnauthorized, "sign the request: send %s, %s and %s (base64 Ed25519)", batch.HeaderTerminal, batch.HeaderTimestamp, batch.HeaderSignature)
		p.challenge = terminalChallenge
		return cloud.Terminal{}, p
	}
	if err := loyalty.CheckName(batch.HeaderTerminal, id); err != nil {
		return cloud.Terminal{}, problem(CodeInvalidRequest, "%v", err)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return cloud.Terminal{}, problem(CodeInvalidRequest, "%s must be Unix seconds", batch.HeaderTimestamp)
	}
	if skew := s.Now().Sub(time.Unix(unix, 0)).Abs(); skew > s.RequestClockSkew {
		return cloud.Terminal{}, problem(CodeBadSignature, "the request is %v away from the cloud's clock (at most %v); check the terminal's clock", skew.Round(time.Second), s.RequestClockSkew)
	}
	t, err := s.terminal(r.Context(), id)
	if err != nil {
		return cloud.Terminal{}, err
	}
	// The signature first: only the key's holder learns that it was revoked.
	if !ed25519.Verify(t.PublicKey, batch.RequestSigningMessage(s.Program, r.Method, r.URL.RequestURI(), id, unix), sig) {
		return cloud.Terminal{}, problem(CodeBadSignature, "the request signature does not verify against terminal %q's key", id)
	}
	if t.Status != cloud.TerminalActive {
		return cloud.Terminal{}, problem(CodeTerminalRevoked, "terminal %q was revoked; enroll a replacement with a new code", id)
	}
	return t, nil
}
