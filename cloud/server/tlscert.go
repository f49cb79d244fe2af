package server

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloadCheck is how often, at most, a TLS handshake looks whether
// the certificate or key file changed.
const certReloadCheck = time.Minute

// certExpiryWarning: a certificate that expires sooner than this is
// logged as a warning when it is loaded.
const certExpiryWarning = 14 * 24 * time.Hour

// certFiles serves a TLS certificate from a certificate file and a key
// file, and loads the pair again when either file's content changes, so
// that a renewed certificate (certbot, another ACME client, an operator's
// copy) is served without a restart. Content, not modification time and
// size: a copy that keeps the old file's time (cp -p, rsync -t) of a
// certificate of the same length is still a new certificate. A pair that
// does not load (written half, or a key that does not match the
// certificate) leaves the certificate in service as it was, and says so
// in the log.
type certFiles struct {
	certFile, keyFile string
	checkEvery        time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	loaded  [sha256.Size]byte // digest of the pair in service
	checked time.Time         // when the files were last looked at
	failed  [sha256.Size]byte // of a pair that did not load, so it is logged once
}

// loadCertFiles loads the pair for the first time: an error here stops
// the server from starting.
func loadCertFiles(certFile, keyFile string, checkEvery time.Duration, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, checkEvery: checkEvery, log: log}
	p, err := c.read()
	if err != nil {
		return nil, err
	}
	if err := c.load(p); err != nil {
		return nil, err
	}
	c.checked = time.Now()
	return c, nil
}

// getCertificate is tls.Config.GetCertificate.
func (c *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= c.checkEvery {
		c.checked = now
		c.reloadIfChanged()
	}
	return c.cert, nil
}

// expiry returns when the certificate in service expires.
func (c *certFiles) expiry() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert.Leaf.NotAfter
}

// reloadIfChanged loads the pair again if either file changed since it was
// loaded, keeping the one in service when the new one does not load.
func (c *certFiles) reloadIfChanged() {
	p, err := c.read()
	switch {
	case err != nil:
		p.digest = sha256.Sum256([]byte(err.Error())) // so that it is logged once
	case p.digest == c.loaded || p.digest == c.failed:
		return
	default:
		err = c.load(p)
	}
	if err != nil {
		if p.digest != c.failed {
			c.log.Error("TLS certificate changed but does not load; still serving the previous one until the files are fixed",
				logErr, err, "expires", c.cert.Leaf.NotAfter)
		}
		c.failed = p.digest
		return
	}
	c.log.Info("TLS certificate reloaded", "subject", c.cert.Leaf.Subject.String(), "expires", c.cert.Leaf.NotAfter)
}

// certPair is what the two files held when they were read.
type certPair struct {
	certPEM, keyPEM []byte
	digest          [sha256.Size]byte // of both, each prefixed by its length
}

// read reads both files.
func (c *certFiles) read() (certPair, error) {
	var p certPair
	var err error
	if p.certPEM, err = os.ReadFile(c.certFile); err != nil {
		return p, fmt.Errorf("server: TLS certificate: %w", err)
	}
	if p.keyPEM, err = os.ReadFile(c.keyFile); err != nil {
		return p, fmt.Errorf("server: TLS key: %w", err)
	}
	h := sha256.New()
	for _, b := range [][]byte{p.certPEM, p.keyPEM} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	h.Sum(p.digest[:0])
	return p, nil
}

// load puts the pair read in service.
func (c *certFiles) load(p certPair) error {
	cert, err := tls.X509KeyPair(p.certPEM, p.keyPEM)
	if err != nil {
		return fmt.Errorf("server: load TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("server: parse TLS certificate %s: %w", c.certFile, err)
		}
	}
	if now := time.Now(); c.cert != nil && now.After(cert.Leaf.NotAfter) && now.Before(c.cert.Leaf.NotAfter) {
		// An old pair copied back, a renewal gone wrong: every till's
		// handshake would fail with it.
		return fmt.Errorf("server: TLS certificate %s expired on %s; the one in service is valid until %s",
			c.certFile, cert.Leaf.NotAfter.Format(time.RFC3339), c.cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	if left := time.Until(cert.Leaf.NotAfter); left < certExpiryWarning {
		c.log.Warn("the TLS certificate expires soon; renew it (the cloud loads a renewed one without a restart)",
			"file", c.certFile, "expires", cert.Leaf.NotAfter)
	}
	c.cert, c.loaded, c.failed = &cert, p.digest, [sha256.Size]byte{}
	return nil
}
