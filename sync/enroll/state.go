package enroll

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// File names inside a state directory.
const (
	KeyFile        = "terminal.key"
	CloudKeyFile   = "cloud.pub"
	EnrollmentFile = "enrollment.json"
)

// ErrNotEnrolled is returned by Load for a directory without an enrollment.
var ErrNotEnrolled = errors.New("enroll: terminal not enrolled")

// ErrCloudKeyMismatch is returned by Enroll when the cloud's key is not the expected one.
var ErrCloudKeyMismatch = errors.New("enroll: unexpected cloud key")

// ErrAlreadyEnrolled is returned by Enroll for a directory that holds an enrollment.
var ErrAlreadyEnrolled = errors.New("enroll: terminal already enrolled")

// State is an enrolled terminal: its identity, its key and the cloud's key.
type State struct {
	Dir           string    `json:"-"`
	CloudURL      string    `json:"cloud_url"`
	Program       string    `json:"program"`
	Store         string    `json:"store"`
	Terminal      string    `json:"terminal"`
	TerminalKeyID string    `json:"terminal_key_id"`
	CloudKeyID    string    `json:"cloud_key_id"`
	EnrolledAt    time.Time `json:"enrolled_at"`
	// Epoch is the lowest journal epoch this till may write in (the
	// cloud's answer at enrollment; 0 from a cloud that gave none): the
	// agent opens its journal with it as journal.Options.MinEpoch.
	Epoch uint32 `json:"epoch,omitempty"`

	Key      ed25519.PrivateKey `json:"-"`
	CloudKey ed25519.PublicKey  `json:"-"`
	// Roster is the store roster and keyring as last saved; nil when the
	// cloud handed none out yet.
	Roster *Roster `json:"-"`
}

// Load reads the state directory dir written by Enroll.
func Load(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, EnrollmentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s; run 'tillpoint enroll --cloud URL --code CODE --dir %s'", ErrNotEnrolled, dir, EnrollmentFile, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read enrollment: %w", err)
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, EnrollmentFile), err)
	}
	st.Dir = dir
	if st.Key, err = loadPrivateKey(filepath.Join(dir, KeyFile)); err != nil {
		return nil, err
	}
	if st.CloudKey, err = loadPublicKey(filepath.Join(dir, CloudKeyFile)); err != nil {
		return nil, err
	}
	if st.Roster, err = st.loadRoster(); err != nil {
		return nil, err
	}
	return &st, nil
}

// loadOrCreateKey returns the terminal key in path, generating it with
// mode 0600 when there is none (batch.LoadOrCreatePrivateKeyFile).
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	key, _, err := batch.LoadOrCreatePrivateKeyFile(path)
	if err != nil {
		return nil, terminalKeyError(err)
	}
	return key, nil
}

func loadPrivateKey(path string) (ed25519.PrivateKey, error) {
	k, err := batch.ReadPrivateKeyFile(path)
	if err != nil {
		return nil, terminalKeyError(err)
	}
	return k, nil
}

// terminalKeyError says which key failed, and for a bad file what to do.
func terminalKeyError(err error) error {
	if errors.Is(err, batch.ErrBadKeyFile) {
		return fmt.Errorf("terminal %w; remove the state directory and enroll again", err)
	}
	return fmt.Errorf("terminal %w", err)
}

func loadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cloud key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("cloud key %s is not a PEM \"PUBLIC KEY\" block; enroll again", path)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse cloud key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("cloud key %s is a %T, want Ed25519", path, k)
	}
	return ek, nil
}

// save writes the cloud key, then enrollment.json, each atomically.
func (st *State) save() error {
	der, err := x509.MarshalPKIXPublicKey(st.CloudKey)
	if err != nil {
		return fmt.Errorf("encode cloud key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(st.Dir, CloudKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode enrollment: %w", err)
	}
	return writeFileAtomic(filepath.Join(st.Dir, EnrollmentFile), append(b, '\n'), 0o644)
}

// writeFileAtomic writes data to a temporary file with mode perm, syncs
// it, renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
