package enroll

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// Files of the store roster inside a state directory.
const (
	// RosterFile is the roster document exactly as the cloud signed it.
	RosterFile = "roster.cose"
	// GossipKeysFile is the store's gossip keyring, serf's format: a JSON
	// array of base64 keys, the primary first; mode 0600.
	GossipKeysFile = "gossip.keys"
	// CardKeyFile is the program's card hash key, hex; mode 0600.
	CardKeyFile = "card.key"
)

// ErrStaleRoster is returned for a roster older than the one the terminal holds.
var ErrStaleRoster = errors.New("enroll: roster older than the one this terminal holds")

// Roster is the store roster and keyring a terminal holds.
type Roster struct {
	// Doc is the verified document; Raw its signed bytes.
	Doc *batch.RosterDoc
	Raw []byte
	// GossipKeys is the store's keyring, the primary first.
	GossipKeys [][]byte
	// CardKey is the program's card key, when this roster brought one.
	CardKey []byte
}

// Version returns the roster's version, 0 for none.
func (r *Roster) Version() uint64 {
	if r == nil || r.Doc == nil {
		return 0
	}
	return r.Doc.Version
}

// newBoxKey makes the one-time X25519 key the cloud seals secrets to.
func newBoxKey() (*ecdh.PrivateKey, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make a box key: %w", err)
	}
	return k, nil
}

// openRoster verifies a roster document for this terminal and opens its
// secrets with box.
func openRoster(raw []byte, program, store, terminal string, cloud, self ed25519.PublicKey, box *ecdh.PrivateKey) (*Roster, error) {
	doc, err := batch.OpenRoster(raw, program, cloud)
	if err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	if doc.Store != store || doc.Terminal != terminal {
		return nil, fmt.Errorf("roster: issued to terminal %q of store %q, not %q of %q", doc.Terminal, doc.Store, terminal, store)
	}
	found := false
	for _, t := range doc.Terminals {
		if t.ID == terminal {
			found = !t.Revoked && t.PublicKey.Equal(self)
		}
	}
	if !found {
		return nil, fmt.Errorf("roster: this terminal (%s) is not listed active with its key; it was revoked or re-keyed: enroll again", terminal)
	}
	r := &Roster{Doc: doc, Raw: raw}
	if err := r.openSecrets(box, program, terminal); err != nil {
		return nil, err
	}
	return r, nil
}

// openSecrets opens the roster's sealed secrets with box, when both are there.
func (r *Roster) openSecrets(box *ecdh.PrivateKey, program, terminal string) error {
	if len(r.Doc.Secrets) == 0 || box == nil {
		return nil
	}
	sec, err := batch.OpenSecrets(box, program, terminal, r.Doc.Secrets)
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	r.GossipKeys, r.CardKey = sec.GossipKeys, sec.CardKey
	return nil
}

// FetchRoster gets the store roster from the cloud at baseURL (GET
// /v1/roster, signed as this terminal) with the secrets sealed to a fresh
// key, and verifies it: the cloud's signature, this terminal and store,
// and a version no older than have (ErrStaleRoster).
func (st *State) FetchRoster(ctx context.Context, client *http.Client, baseURL string, have uint64) (*Roster, error) {
	box, err := newBoxKey()
	if err != nil {
		return nil, err
	}
	u := strings.TrimRight(baseURL, "/") + "/v1/roster?box=" + base64.RawURLEncoding.EncodeToString(box.PublicKey().Bytes())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	st.SignRequest(req, time.Now())
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("roster: reach the cloud: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, batch.MaxRosterBytes+1))
	if err != nil {
		return nil, fmt.Errorf("roster: read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("roster: %w", parseProblem(resp, b))
	}
	r, err := openRoster(b, st.Program, st.Store, st.Terminal, st.CloudKey, st.Key.Public().(ed25519.PublicKey), nil)
	if err != nil {
		return nil, err
	}
	if r.Version() < have {
		return nil, fmt.Errorf("%w: version %d, this terminal holds %d", ErrStaleRoster, r.Version(), have)
	}
	if err := r.openSecrets(box, st.Program, st.Terminal); err != nil {
		return nil, err
	}
	if len(r.GossipKeys) == 0 {
		return nil, errors.New("roster: the cloud sent no gossip key; check that the cloud is up to date")
	}
	return r, nil
}

// SaveRoster keeps r in the state directory: the signed document, then
// the keyring (mode 0600), each atomically; the card key only when the
// directory has none yet (it never changes for a program, and the agent
// reads it at start).
func (st *State) SaveRoster(r *Roster) error {
	if len(r.GossipKeys) > 0 {
		enc := make([]string, len(r.GossipKeys))
		for i, k := range r.GossipKeys {
			enc[i] = base64.StdEncoding.EncodeToString(k)
		}
		b, err := json.MarshalIndent(enc, "", "  ")
		if err != nil {
			return fmt.Errorf("encode gossip keys: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(st.Dir, GossipKeysFile), append(b, '\n'), 0o600); err != nil {
			return err
		}
	}
	if len(r.CardKey) > 0 {
		path := filepath.Join(st.Dir, CardKeyFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := writeFileAtomic(path, []byte(hex.EncodeToString(r.CardKey)+"\n"), 0o600); err != nil {
				return err
			}
		}
	}
	return writeFileAtomic(filepath.Join(st.Dir, RosterFile), r.Raw, 0o644)
}

// loadRoster reads the roster the state directory holds, nil when none
// (an enrollment older than rosters, or a cloud that sent none).
func (st *State) loadRoster() (*Roster, error) {
	raw, err := os.ReadFile(filepath.Join(st.Dir, RosterFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read roster: %w", err)
	}
	r, err := openRoster(raw, st.Program, st.Store, st.Terminal, st.CloudKey, st.Key.Public().(ed25519.PublicKey), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; remove it and the agent fetches it again", filepath.Join(st.Dir, RosterFile), err)
	}
	path := filepath.Join(st.Dir, GossipKeysFile)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r, nil
	case err != nil:
		return nil, fmt.Errorf("gossip keys: %w", err)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("gossip keys %s have mode %04o: others can read the store's key; run 'chmod 600 %s'", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip keys: %w", err)
	}
	var enc []string
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&enc); err != nil {
		return nil, fmt.Errorf("gossip keys %s: %w; remove it and the agent fetches the keyring again", path, err)
	}
	for i, e := range enc {
		k, err := base64.StdEncoding.DecodeString(e)
		if err != nil || len(k) != batch.GossipKeySize {
			return nil, fmt.Errorf("gossip keys %s: key %d is not %d bytes of base64; remove the file and the agent fetches the keyring again", path, i+1, batch.GossipKeySize)
		}
		r.GossipKeys = append(r.GossipKeys, k)
	}
	return r, nil
}
