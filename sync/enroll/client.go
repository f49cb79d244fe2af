package enroll

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/sync/batch"
)

// Client enrolls a terminal with a cloud.
type Client struct {
	// HTTP sends the request; set its Transport to trust a private CA.
	HTTP *http.Client
	// Now is the clock; tests inject one.
	Now func() time.Time
	// ExpectCloudKeyID, when set, is the cloud key's fingerprint as the
	// operator read it from the cloud ('tillpoint cloud' prints it at
	// start): enrollment fails, saving nothing, if the cloud sends another key.
	ExpectCloudKeyID string
	// Advertise is the till's gossip address (IP:PORT) the other tills
	// of its store dial; it goes into the store roster. Optional.
	Advertise string
	// Warn, when set, hears what went wrong without failing the enrollment.
	Warn func(msg string)
}

// NewClient returns a Client with a 30 s request timeout.
func NewClient() *Client {
	return &Client{HTTP: &http.Client{Timeout: 30 * time.Second}, Now: time.Now}
}

func (c *Client) warn(msg string) {
	if c.Warn != nil {
		c.Warn(msg)
	}
}

// Enroll makes (or reuses) the terminal key in dir, spends code with the
// cloud at cloudURL, and saves the enrollment in dir. It refuses a dir
// that is already enrolled.
func (c *Client) Enroll(ctx context.Context, cloudURL, code, dir string) (*State, error) {
	base, err := url.Parse(cloudURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("enroll: cloud URL %q must be http(s)://host[:port]", cloudURL)
	}
	code = strings.TrimSpace(code)
	if code == "" {
		return nil, errors.New("enroll: no code; ask the operator for one ('tillpoint cloud enroll-code')")
	}
	if _, err := os.Stat(filepath.Join(dir, EnrollmentFile)); err == nil {
		return nil, fmt.Errorf("%w: %s holds an enrollment; use another --dir or remove it to enroll again", ErrAlreadyEnrolled, dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("enroll: check state directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("enroll: create state directory: %w", err)
	}
	key, err := loadOrCreateKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	box, err := newBoxKey()
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	body, err := json.Marshal(batch.EnrollRequest{Code: code, PublicKey: pub, Proof: ed25519.Sign(key, batch.EnrollProofMessage(code, pub)),
		Advertise: c.Advertise, BoxKey: box.PublicKey().Bytes()})
	if err != nil {
		return nil, fmt.Errorf("enroll: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath("/v1/enroll").String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("enroll: reach the cloud: %w (check --cloud and the network)", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, batch.MaxEnrollResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("enroll: read reply: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("enroll: %w", parseProblem(resp, b))
	}
	var r batch.EnrollResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("enroll: parse reply: %w", err)
	}
	switch {
	case len(r.CloudPublicKey) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("enroll: the cloud sent a %d-byte public key, want %d", len(r.CloudPublicKey), ed25519.PublicKeySize)
	case r.Program == "" || r.Store == "" || r.Terminal == "":
		return nil, errors.New("enroll: the cloud's reply lacks the program, store or terminal")
	case r.CloudKeyID != batch.Fingerprint(r.CloudPublicKey):
		return nil, fmt.Errorf("enroll: the cloud's key ID %q does not match its key", r.CloudKeyID)
	case c.ExpectCloudKeyID != "" && !strings.EqualFold(c.ExpectCloudKeyID, r.CloudKeyID):
		return nil, fmt.Errorf("%w: the cloud's key is %s, the operator said %s; do not enroll against this server", ErrCloudKeyMismatch, r.CloudKeyID, c.ExpectCloudKeyID)
	case r.TerminalKeyID != batch.Fingerprint(pub):
		return nil, fmt.Errorf("enroll: the cloud registered key %q, not ours (%s)", r.TerminalKeyID, batch.Fingerprint(pub))
	}
	st := &State{
		Dir:           dir,
		CloudURL:      strings.TrimRight(cloudURL, "/"),
		Program:       r.Program,
		Store:         r.Store,
		Terminal:      r.Terminal,
		TerminalKeyID: r.TerminalKeyID,
		CloudKeyID:    r.CloudKeyID,
		EnrolledAt:    c.Now().UTC().Truncate(time.Second),
		Epoch:         r.Epoch,
		Key:           key,
		CloudKey:      ed25519.PublicKey(r.CloudPublicKey),
	}
	if len(r.Roster) > 0 {
		// The code is spent: a roster that does not verify is not worth
		// losing the enrollment over; the agent fetches it again.
		st.Roster, err = openRoster(r.Roster, st.Program, st.Store, st.Terminal, st.CloudKey, pub, box)
		if err != nil {
			st.Roster = nil
			c.warn(fmt.Sprintf("the cloud's roster was refused (%v); the agent fetches it again", err))
		} else if err := st.SaveRoster(st.Roster); err != nil {
			return nil, fmt.Errorf("enroll: the cloud registered this terminal but saving failed; fix the cause and ask for a new code: %w", err)
		}
	}
	if err := st.save(); err != nil {
		return nil, fmt.Errorf("enroll: the cloud registered this terminal but saving failed; fix the cause and ask for a new code: %w", err)
	}
	return st, nil
}

// ProblemError is an RFC 9457 problem the cloud answered with.
type ProblemError struct {
	Status int
	Code   string
	Detail string
}

func (e *ProblemError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("the cloud answered %d: %s", e.Status, e.Detail)
	}
	return fmt.Sprintf("the cloud refused (%s): %s", e.Code, e.Detail)
}

func parseProblem(resp *http.Response, body []byte) error {
	e := &ProblemError{Status: resp.StatusCode}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" {
		var p struct {
			Code   string `json:"code"`
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(body, &p) == nil {
			e.Code, e.Detail = p.Code, p.Detail
			if e.Detail == "" {
				e.Detail = p.Title
			}
			return e
		}
	}
	e.Detail = strings.TrimSpace(string(body))
	if len(e.Detail) > 200 {
		e.Detail = e.Detail[:200]
	}
	return e
}
