package peers

import (
	"bytes"
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

// KeyringChange is what SetKeyring did.
type KeyringChange struct {
	Installed int  // keys installed across the store
	Switched  bool // the primary changed to the wanted one
	Removed   int  // keys removed across the store
	// Pending is true when the wanted primary is installed but not yet
	// used: some live terminal did not confirm it holds the key, and
	// switching now would cut it off. Call SetKeyring again later.
	Pending bool
}

// Keys returns this terminal's gossip keys, the primary first; nil when
// gossip is not encrypted or before Start.
func (p *Peers) Keys() [][]byte {
	p.mu.Lock()
	kr := p.keyring
	p.mu.Unlock()
	if kr == nil {
		return nil
	}
	return kr.GetKeys()
}

// SetKeyring brings the store's gossip keyring to want (the primary
// first), as the cloud hands it out, without a restart: it installs the
// keys this terminal lacks on every terminal (serf's KeyManager), switches
// the store to want's primary once every live terminal holds it, and
// removes the keys want no longer lists. Every step is idempotent, so the
// tills of a store may all run it as they learn of the new keyring; a
// step the network cuts short is retried by the next call.
func (p *Peers) SetKeyring(ctx context.Context, want [][]byte) (KeyringChange, error) {
	var ch KeyringChange
	if len(want) == 0 {
		return ch, fmt.Errorf("%w: an empty gossip keyring; keep the current one", ErrConfig)
	}
	has := func(keys [][]byte, k []byte) bool {
		return slices.ContainsFunc(keys, func(c []byte) bool { return bytes.Equal(c, k) })
	}
	for _, k := range want {
		local := p.Keys()
		if local == nil {
			return ch, fmt.Errorf("%w: this terminal gossips in the clear; restart it with the store key", ErrConfig)
		}
		if has(local, k) {
			continue
		}
		if _, err := p.InstallKey(ctx, k); err != nil && !has(p.Keys(), k) {
			return ch, err
		}
		ch.Installed++
	}
	if !bytes.Equal(p.Keys()[0], want[0]) {
		ready, err := p.everyoneHolds(ctx, want[0])
		if err != nil {
			return ch, err
		}
		if !ready {
			ch.Pending = true
			return ch, nil
		}
		if _, err := p.UseKey(ctx, want[0]); err != nil && !bytes.Equal(p.Keys()[0], want[0]) {
			return ch, err
		}
		ch.Switched = true
	}
	for _, k := range p.Keys() {
		if has(want, k) {
			continue
		}
		if _, err := p.RemoveKey(ctx, k); err != nil && has(p.Keys(), k) {
			return ch, err
		}
		ch.Removed++
	}
	if ch != (KeyringChange{}) {
		p.log.Info("gossip keyring updated", "installed", ch.Installed, "switched", ch.Switched, "removed", ch.Removed)
	}
	return ch, nil
}

// everyoneHolds reports whether every live terminal answered that it
// holds key; another install round covers those that missed the first.
func (p *Peers) everyoneHolds(ctx context.Context, key []byte) (bool, error) {
	st, err := p.ListKeys(ctx)
	if err != nil && st.Responses == 0 {
		return false, err
	}
	enc := base64.StdEncoding.EncodeToString(key)
	if st.Responses < st.Nodes || st.Keys[enc] < st.Nodes {
		if _, err := p.InstallKey(ctx, key); err != nil {
			p.log.Debug("install the new gossip key again; switching waits", logErr, err)
		}
		return false, nil
	}
	return true, nil
}
