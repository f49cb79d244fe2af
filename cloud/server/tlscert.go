package server

import (
	"crypto/tls"
	"crypto/x509"
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
// file, and loads the pair again when either file changes, so that a
// renewed certificate (certbot, another ACME client, an operator's copy)
// is served without a restart. A pair that does not load (written half,
// or a key that does not match the certificate) leaves the certificate
// in service as it was, and says so in the log.
type certFiles struct {
	certFile, keyFile string
	checkEvery        time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	loaded  [2]fileStamp // of the pair in service
	checked time.Time    // when the files were last looked at
	failed  [2]fileStamp // of a pair that did not load, so it is logged once
}

// fileStamp tells whether a file changed: its modification time (Unix
// nanoseconds) and size.
type fileStamp struct {
	mod, size int64
}

// loadCertFiles loads the pair for the first time: an error here stops
// the server from starting.
func loadCertFiles(certFile, keyFile string, checkEvery time.Duration, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, checkEvery: checkEvery, log: log}
	stamps, err := c.stamps()
	if err != nil {
		return nil, err
	}
	if err := c.load(stamps); err != nil {
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
	stamps, err := c.stamps()
	if err == nil && (stamps == c.loaded || stamps == c.failed) {
		return
	}
	if err == nil {
		err = c.load(stamps)
	}
	if err != nil {
		if stamps != c.failed {
			c.log.Error("TLS certificate changed but does not load; still serving the previous one until the files are fixed",
				logErr, err, "expires", c.cert.Leaf.NotAfter)
		}
		c.failed = stamps
		return
	}
	c.log.Info("TLS certificate reloaded", "subject", c.cert.Leaf.Subject.String(), "expires", c.cert.Leaf.NotAfter)
}

// stamps looks at both files.
func (c *certFiles) stamps() ([2]fileStamp, error) {
	var st [2]fileStamp
	for i, path := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(path)
		if err != nil {
			return st, fmt.Errorf("server: TLS certificate: %w", err)
		}
		st[i] = fileStamp{fi.ModTime().UnixNano(), fi.Size()}
	}
	return st, nil
}

// load reads the pair and puts it in service; stamps are the files' as
// looked at just before.
func (c *certFiles) load(stamps [2]fileStamp) error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("server: load TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("server: parse TLS certificate %s: %w", c.certFile, err)
		}
	}
	if left := time.Until(cert.Leaf.NotAfter); left < certExpiryWarning {
		c.log.Warn("the TLS certificate expires soon; renew it (the cloud loads a renewed one without a restart)",
			"file", c.certFile, "expires", cert.Leaf.NotAfter)
	}
	c.cert, c.loaded, c.failed = &cert, stamps, [2]fileStamp{}
	return nil
}
