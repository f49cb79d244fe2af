package peers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/hashicorp/serf/serf"
)

// KeyStatus is what the store's terminals answered to a keyring operation.
type KeyStatus struct {
	Nodes     int               // terminals serf knows of
	Responses int               // terminals that answered
	Errors    map[string]string // terminal to what went wrong there
	// Keys counts, per base64 key, the terminals holding it; Primary the
	// terminals using it to encrypt (ListKeys only).
	Keys    map[string]int
	Primary map[string]int
}

// InstallKey adds a gossip key on every terminal of the store, the first
// step of a rotation: InstallKey(new), UseKey(new), RemoveKey(old). A key is
// 16, 24 or 32 bytes. The change is persisted in KeyringPath when set.
func (p *Peers) InstallKey(ctx context.Context, key []byte) (KeyStatus, error) {
	return p.keyOp(ctx, "install", key, (*serf.KeyManager).InstallKey)
}

// UseKey makes an installed key the one every terminal encrypts with.
func (p *Peers) UseKey(ctx context.Context, key []byte) (KeyStatus, error) {
	return p.keyOp(ctx, "use", key, (*serf.KeyManager).UseKey)
}

// RemoveKey removes a key that is no longer the primary from every terminal.
func (p *Peers) RemoveKey(ctx context.Context, key []byte) (KeyStatus, error) {
	return p.keyOp(ctx, "remove", key, (*serf.KeyManager).RemoveKey)
}

// ListKeys asks every terminal which keys it holds.
func (p *Peers) ListKeys(ctx context.Context) (KeyStatus, error) {
	s, err := p.running()
	if err != nil {
		return KeyStatus{}, err
	}
	if err := ctx.Err(); err != nil {
		return KeyStatus{}, fmt.Errorf("list gossip keys: %w", err)
	}
	resp, err := s.KeyManager().ListKeys()
	st := keyStatus(resp)
	if err != nil {
		return st, fmt.Errorf("list gossip keys: %w", err)
	}
	return st, nil
}

func (p *Peers) keyOp(ctx context.Context, what string, key []byte,
	op func(*serf.KeyManager, string) (*serf.KeyResponse, error)) (KeyStatus, error) {
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return KeyStatus{}, fmt.Errorf("%w: %s gossip key: %d bytes, want 16, 24 or 32", ErrConfig, what, n)
	}
	s, err := p.running()
	if err != nil {
		return KeyStatus{}, err
	}
	if !s.EncryptionEnabled() {
		return KeyStatus{}, fmt.Errorf("%w: %s gossip key: this terminal gossips in the clear; restart it with the store key first", ErrConfig, what)
	}
	if err := ctx.Err(); err != nil {
		return KeyStatus{}, fmt.Errorf("%s gossip key: %w", what, err)
	}
	resp, err := op(s.KeyManager(), base64.StdEncoding.EncodeToString(key))
	st := keyStatus(resp)
	if err != nil {
		return st, fmt.Errorf("%s gossip key: %w; run it again once every terminal is up", what, err)
	}
	p.log.Info("gossip key changed", "op", what, "terminals", st.Responses)
	return st, nil
}

func keyStatus(r *serf.KeyResponse) KeyStatus {
	if r == nil {
		return KeyStatus{}
	}
	return KeyStatus{Nodes: r.NumNodes, Responses: r.NumResp, Errors: r.Messages, Keys: r.Keys, Primary: r.PrimaryKeys}
}

// readKeyringFile reads serf's keyring file: a JSON array of base64 keys,
// the primary first.
func readKeyringFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip keyring: %w", err)
	}
	var encoded []string
	if err := json.Unmarshal(b, &encoded); err != nil {
		return nil, fmt.Errorf("%w: gossip keyring %s: %w; restore it or delete it to start from the enrolled key", ErrConfig, path, err)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("%w: gossip keyring %s holds no key; delete it to start from the enrolled key", ErrConfig, path)
	}
	keys := make([][]byte, 0, len(encoded))
	for i, e := range encoded {
		k, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			return nil, fmt.Errorf("%w: gossip keyring %s: key %d is not base64", ErrConfig, path, i+1)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// writeKeyringFile writes keys in serf's format, mode 0600.
func writeKeyringFile(path string, keys [][]byte) error {
	encoded := make([]string, len(keys))
	for i, k := range keys {
		encoded[i] = base64.StdEncoding.EncodeToString(k)
	}
	b, err := json.MarshalIndent(slices.Clip(encoded), "", "  ")
	if err != nil {
		return fmt.Errorf("encode gossip keyring: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	return nil
}
