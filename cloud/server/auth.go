package server

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
)

// Headers of a signed GET: a terminal reads its feeds (snapshots, rules)
// by signing the request with its enrolled key.
const (
	HeaderTerminal  = "Tillpoint-Terminal"
	HeaderTimestamp = "Tillpoint-Timestamp"
	HeaderSignature = "Tillpoint-Signature"
)

// RequestSigningMessage is what a terminal signs for a GET: the program,
// the method, the path with its query, the terminal and the Unix time.
// sync/enroll signs the same bytes.
func RequestSigningMessage(program, method, pathQuery, terminal string, unix int64) []byte {
	b := make([]byte, 0, 64+len(program)+len(pathQuery)+len(terminal))
	b = append(b, "tillpoint request v1\n"...)
	b = append(b, program...)
	b = append(b, '\n')
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, pathQuery...)
	b = append(b, '\n')
	b = append(b, terminal...)
	b = append(b, '\n')
	return strconv.AppendInt(b, unix, 10)
}

// authTerminal checks a signed request and returns the terminal that sent
// it. A replay is bounded by RequestClockSkew and can only fetch again what
// the terminal may read anyway.
func (s *Server) authTerminal(r *http.Request) (cloud.Terminal, error) {
	id := r.Header.Get(HeaderTerminal)
	ts := r.Header.Get(HeaderTimestamp)
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(HeaderSignature))
	if id == "" || ts == "" || err != nil || len(sig) != ed25519.SignatureSize {
		return cloud.Terminal{}, problem(CodeUnauthorized, "sign the request: send %s, %s and %s (base64 Ed25519)", HeaderTerminal, HeaderTimestamp, HeaderSignature)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return cloud.Terminal{}, problem(CodeInvalidRequest, "%s must be Unix seconds", HeaderTimestamp)
	}
	if skew := s.Now().Sub(time.Unix(unix, 0)).Abs(); skew > s.RequestClockSkew {
		return cloud.Terminal{}, problem(CodeBadSignature, "the request is %v away from the cloud's clock (at most %v); check the terminal's clock", skew.Round(time.Second), s.RequestClockSkew)
	}
	t, err := s.terminal(r.Context(), id)
	if err != nil {
		return cloud.Terminal{}, err
	}
	if t.Status != cloud.TerminalActive {
		return cloud.Terminal{}, problem(CodeTerminalRevoked, "terminal %q was revoked; enroll a replacement with a new code", id)
	}
	if !ed25519.Verify(t.PublicKey, RequestSigningMessage(s.Program, r.Method, r.URL.RequestURI(), id, unix), sig) {
		return cloud.Terminal{}, problem(CodeBadSignature, "the request signature does not verify against terminal %q's key", id)
	}
	return t, nil
}
