package server

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// DefaultGossipKeyGrace is how long a store's tills keep a gossip key a
// rotation replaced, so a till that learns of the rotation late still
// understands the others meanwhile.
const DefaultGossipKeyGrace = 24 * time.Hour

// QueryBoxKey is the query parameter of GET /v1/roster that carries the
// terminal's X25519 public key (base64url, unpadded): the store's secrets
// are sealed to it. It is part of the signed request.
const QueryBoxKey = "box"

// handleRoster is GET /v1/roster[?box=KEY]: the caller's store roster and,
// sealed to KEY, the card key and the store's gossip keyring, signed by
// the cloud's key like the other feeds.
func (s *Server) handleRoster(w http.ResponseWriter, r *http.Request) {
	t, err := s.authTerminal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var box []byte
	if v := r.URL.Query().Get(QueryBoxKey); v != "" {
		if box, err = base64.RawURLEncoding.DecodeString(v); err != nil {
			s.fail(w, r, problem(CodeInvalidRequest, "%s must be the terminal's X25519 public key in unpadded base64url", QueryBoxKey))
			return
		}
	}
	to, err := parseBoxKey(box)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sealed, err := s.sealRoster(r.Context(), t, to)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeSealed(w, http.StatusOK, sealed)
}

// sealRoster returns t's store roster signed for t, with the secrets
// sealed to the key to; without one it carries no secrets.
func (s *Server) sealRoster(ctx context.Context, t cloud.Terminal, to *ecdh.PublicKey) ([]byte, error) {
	sr, err := s.Ledger.StoreRoster(ctx, t.Store)
	if err != nil {
		return nil, fmt.Errorf("roster of store %s: %w", t.Store, err)
	}
	now := s.Now().UTC()
	doc := &batch.RosterDoc{Store: sr.Store, Version: sr.Version, Issued: now, Terminal: t.ID}
	for _, m := range sr.Terminals {
		doc.Terminals = append(doc.Terminals, batch.RosterTerminal{ID: m.ID, Addr: m.Addr, PublicKey: m.PublicKey, Revoked: m.Status != cloud.TerminalActive})
	}
	if to != nil {
		sec := &batch.Secrets{CardKey: s.CardKey}
		for _, k := range sr.GossipKeys {
			// A retired key past its grace is no use to anyone: leave it out
			// even before an operator finishes the rotation.
			if !k.RetiredAt.IsZero() && now.Sub(k.RetiredAt) > s.GossipKeyGrace {
				continue
			}
			sec.GossipKeys = append(sec.GossipKeys, k.Key)
		}
		if doc.Secrets, err = batch.SealSecrets(to, s.Program, t.ID, sec); err != nil {
			return nil, err
		}
	}
	return s.signer.SealRoster(doc)
}

// parseBoxKey reads a terminal's box key, sent with an enrollment or a
// roster request: nil when none was sent, a 400 when secrets cannot be
// sealed to it.
func parseBoxKey(b []byte) (*ecdh.PublicKey, error) {
	if len(b) == 0 {
		return nil, nil
	}
	to, err := batch.ParseBoxKey(b)
	if errors.Is(err, batch.ErrBoxKey) {
		return nil, problem(CodeInvalidRequest, "the box key must be the public half of an X25519 key pair (32 bytes, not a low-order point)")
	}
	return to, err
}

// validAdvertise checks a terminal's gossip address: an IP and a port.
func validAdvertise(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) == nil {
		return problem(CodeInvalidRequest, "advertise %q must be IP:PORT, the till's address on the store LAN", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return problem(CodeInvalidRequest, "advertise %q: the port must be 1 to 65535", addr)
	}
	return nil
}

// GossipKeyID names a gossip key without revealing it, for logs and output.
func GossipKeyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("tillpoint gossip key\x00"), key...))
	return hex.EncodeToString(sum[:6])
}

// RotateGossipKey makes a fresh primary gossip key for store; the old one
// stays in the keyring until FinishGossipRotation or the grace period
// ends. Keys retired more than grace ago go first. It returns the store's
// new roster.
func RotateGossipKey(ctx context.Context, ledger Ledger, store string, grace time.Duration, now time.Time) (cloud.StoreRoster, error) {
	if _, err := ledger.RemoveRetiredGossipKeys(ctx, store, now.Add(-grace)); err != nil {
		return cloud.StoreRoster{}, fmt.Errorf("drop the gossip keys of store %s past their grace: %w", store, err)
	}
	key := make([]byte, cloud.GossipKeySize)
	if _, err := rand.Read(key); err != nil {
		return cloud.StoreRoster{}, fmt.Errorf("make a gossip key: %w", err)
	}
	if err := ledger.RotateGossipKey(ctx, store, key, now); err != nil {
		return cloud.StoreRoster{}, fmt.Errorf("rotate the gossip key of store %s: %w", store, err)
	}
	return ledger.StoreRoster(ctx, store)
}

// FinishGossipRotation removes every key a rotation retired from store's
// keyring; the tills drop them at their next roster refresh.
func FinishGossipRotation(ctx context.Context, ledger Ledger, store string, now time.Time) (removed int, _ cloud.StoreRoster, _ error) {
	n, err := ledger.RemoveRetiredGossipKeys(ctx, store, now)
	if err != nil {
		return 0, cloud.StoreRoster{}, fmt.Errorf("finish the gossip key rotation of store %s: %w", store, err)
	}
	sr, err := ledger.StoreRoster(ctx, store)
	return n, sr, err
}

// GossipKeyRequest is the body of POST /v1/admin/stores/{store}/gossip-key.
type GossipKeyRequest struct {
	// Finish removes the keys earlier rotations retired instead of
	// rotating again.
	Finish bool `json:"finish,omitempty"`
}

// GossipKeyResponse is the reply: the store's keyring by key ID (never the keys).
type GossipKeyResponse struct {
	Store         string   `json:"store"`
	RosterVersion uint64   `json:"roster_version"`
	Primary       string   `json:"primary"`
	Retired       []string `json:"retired"`
	Removed       int      `json:"removed,omitempty"`
}

// NewGossipKeyResponse describes sr's keyring.
func NewGossipKeyResponse(sr cloud.StoreRoster, removed int) GossipKeyResponse {
	resp := GossipKeyResponse{Store: sr.Store, RosterVersion: sr.Version, Retired: []string{}, Removed: removed}
	for _, k := range sr.GossipKeys {
		if k.RetiredAt.IsZero() {
			resp.Primary = GossipKeyID(k.Key)
		} else {
			resp.Retired = append(resp.Retired, GossipKeyID(k.Key))
		}
	}
	return resp
}

func (s *Server) handleGossipKey(w http.ResponseWriter, r *http.Request) {
	store := r.PathValue("store")
	if loyalty.CheckName("store", store) != nil {
		s.fail(w, r, problem(CodeNotFound, "no store %q has terminals; check the ID", store))
		return
	}
	var req GossipKeyRequest
	if r.ContentLength != 0 { // an empty POST rotates
		if err := s.readJSON(w, r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	var (
		sr      cloud.StoreRoster
		removed int
		err     error
	)
	if req.Finish {
		removed, sr, err = FinishGossipRotation(r.Context(), s.Ledger, store, s.Now())
	} else {
		sr, err = RotateGossipKey(r.Context(), s.Ledger, store, s.GossipKeyGrace, s.Now())
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := NewGossipKeyResponse(sr, removed)
	s.Logger.Warn("gossip key changed", logStore, store, "finish", req.Finish, "primary", resp.Primary, "roster_version", sr.Version)
	writeJSON(w, http.StatusOK, resp)
}
