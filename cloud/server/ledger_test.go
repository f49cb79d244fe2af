package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/server"
)

// memLedger stands in for the cloud ledger until it lands on main.
type memLedger struct {
	mu        sync.Mutex
	codes     map[string]*memCode
	terminals map[string]server.Terminal
}

type memCode struct {
	store, terminal string
	expires         time.Time
	used            bool
}

func openTestLedger(t *testing.T) server.Ledger {
	return &memLedger{codes: map[string]*memCode{}, terminals: map[string]server.Terminal{}}
}

func openTestCodec(t *testing.T) server.Codec { return struct{}{} }

func (l *memLedger) CreateEnrollCode(ctx context.Context, store, terminal string, expires time.Time) (string, error) {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	code := hex.EncodeToString(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.codes[code] = &memCode{store, terminal, expires, false}
	return code, nil
}

func (l *memLedger) Enroll(ctx context.Context, code string, pub ed25519.PublicKey, now time.Time) (server.Terminal, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.codes[code]
	switch {
	case !ok:
		return server.Terminal{}, server.ErrEnrollCodeBad
	case c.used:
		return server.Terminal{}, server.ErrEnrollCodeUsed
	case !now.Before(c.expires):
		return server.Terminal{}, server.ErrEnrollCodeExpire
	}
	c.used = true
	t := server.Terminal{ID: c.terminal, Store: c.store, PublicKey: pub}
	l.terminals[t.ID] = t
	return t, nil
}

func (l *memLedger) RevokeTerminal(ctx context.Context, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.terminals[id]
	if !ok {
		return server.ErrUnknownTerminal
	}
	t.Revoked = true
	l.terminals[id] = t
	return nil
}

func (l *memLedger) Terminal(ctx context.Context, id string) (server.Terminal, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.terminals[id]
	if !ok {
		return server.Terminal{}, server.ErrUnknownTerminal
	}
	return t, nil
}
