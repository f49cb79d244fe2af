package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// admin wraps an admin handler: it needs "Authorization: Bearer TOKEN"
// with the configured admin token.
func (s *Server) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(s.AdminToken) == 0 {
			s.fail(w, r, problem(CodeAdminDisabled, "start the cloud with --admin-token-file or TILLPOINT_ADMIN_TOKEN to use the admin API"))
			return
		}
		if !s.adminTokenOK(r.Header.Get("Authorization")) {
			p := problem(CodeUnauthorized, "send the admin token as 'Authorization: Bearer TOKEN'")
			p.challenge = adminChallenge
			s.fail(w, r, p)
			return
		}
		next(w, r)
	}
}

// adminTokenOK compares the bearer token in header with the admin token in
// constant time; hashing first hides the token's length too.
func (s *Server) adminTokenOK(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256(s.AdminToken)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// EnrollCodeRequest is the body of POST /v1/admin/enroll-codes.
type EnrollCodeRequest struct {
	Store    string `json:"store"`
	Terminal string `json:"terminal"`
	// TTLSeconds is how long the code stays valid; 0 takes the server's default.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// EnrollCodeResponse is the reply to POST /v1/admin/enroll-codes.
type EnrollCodeResponse struct {
	Code     string    `json:"code"`
	Store    string    `json:"store"`
	Terminal string    `json:"terminal"`
	Expires  time.Time `json:"expires"`
}

func (s *Server) handleCreateEnrollCode(w http.ResponseWriter, r *http.Request) {
	var req EnrollCodeRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Store == "" || req.Terminal == "" {
		s.fail(w, r, problem(CodeInvalidRequest, "an enrollment code needs a store and a terminal"))
		return
	}
	ttl := s.EnrollCodeTTL
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(30*24*time.Hour/time.Second) {
		s.fail(w, r, problem(CodeInvalidRequest, "ttl_seconds must be between 0 and 30 days"))
		return
	}
	if req.TTLSeconds > 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	now := s.Now().UTC()
	c, err := CreateEnrollCode(r.Context(), s.Ledger, req.Store, req.Terminal, now, now.Add(ttl).Truncate(time.Second))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Logger.Info("enrollment code created", logStore, req.Store, logTerminal, req.Terminal)
	writeJSON(w, http.StatusCreated, EnrollCodeResponse{Code: c.Code, Store: c.Store, Terminal: c.Terminal, Expires: c.Expires})
}

// RevokeResponse is the reply to POST /v1/admin/terminals/{id}/revoke.
type RevokeResponse struct {
	Terminal string `json:"terminal"`
	Revoked  bool   `json:"revoked"`
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("terminal")
	if loyalty.CheckName("terminal", id) != nil {
		s.fail(w, r, problem(CodeNotFound, "no terminal %q is enrolled; check the ID", id))
		return
	}
	if err := s.Ledger.RevokeTerminal(r.Context(), id, s.Now()); err != nil {
		if p := asProblem(err); p.Code == CodeUnknownTerminal || p.Code == CodeNotFound {
			err = problem(CodeNotFound, "no terminal %q is enrolled; check the ID", id)
		}
		s.fail(w, r, err)
		return
	}
	s.Logger.Warn("terminal revoked", logTerminal, id)
	writeJSON(w, http.StatusOK, RevokeResponse{Terminal: id, Revoked: true})
}

// PublishRulesResponse is the reply to POST /v1/admin/rules.
type PublishRulesResponse struct {
	Version uint32 `json:"version"`
	Hash    string `json:"hash"`
}

// handlePublishRules is POST /v1/admin/rules: a loyalty.Rules document of
// this program. Publishing the same version again is a no-op; another
// content under a published version is refused.
func (s *Server) handlePublishRules(w http.ResponseWriter, r *http.Request) {
	var rules loyalty.Rules
	if err := s.readJSON(w, r, &rules); err != nil {
		s.fail(w, r, err)
		return
	}
	hash, err := PublishRules(r.Context(), s.Ledger, s.Program, rules, s.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.Logger.Info("rules published", "version", rules.Version)
	writeJSON(w, http.StatusOK, PublishRulesResponse{Version: rules.Version, Hash: hash})
}

// PublishRules checks that rules belong to program and are valid, then
// publishes them in ledger; it returns their hash.
func PublishRules(ctx context.Context, ledger Ledger, program string, rules loyalty.Rules, now time.Time) (string, error) {
	if rules.Program != program {
		return "", problem(CodeInvalidRules, "the rules are for program %q, this cloud serves %q", rules.Program, program)
	}
	if err := rules.Validate(); err != nil {
		return "", err
	}
	hash, err := rules.Hash()
	if err != nil {
		return "", err
	}
	if err := ledger.PublishRules(ctx, rules, now); err != nil {
		return "", fmt.Errorf("publish rules version %d: %w", rules.Version, err)
	}
	return hash, nil
}
