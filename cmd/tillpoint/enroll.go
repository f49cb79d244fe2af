package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/tillpoint/tillpoint/sync/enroll"
)

const enrollHelp = `
Enrolls this terminal with the cloud ledger. It generates the terminal's
Ed25519 key (file mode 0600), registers its public key with the cloud using
the one-time code the operator made with 'tillpoint cloud enroll-code', and
stores the cloud's public key, the program, store and terminal IDs in the
state directory the agent reads. A code works once and expires.

Example:
  tillpoint enroll --cloud https://cloud.example.com --code K7QF-2MXD-9RTA-WC3P
`

func (m *Main) runEnroll(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "enroll", "enroll --cloud URL --code CODE [--dir STATE]", enrollHelp)
	cloudURL := fs.String("cloud", "", "the cloud's base URL, e.g. https://cloud.example.com")
	code := fs.String("code", "", "the one-time enrollment code from the operator")
	dir := fs.String("dir", "/var/lib/tillpoint/terminal", "the terminal's state directory")
	caFile := fs.String("ca", "", "PEM file of CA certificates to trust for the cloud (default: the system's)")
	expectKey := fs.String("cloud-key-id", "", "the cloud key fingerprint 'tillpoint cloud' printed at start; enrollment fails if the cloud sends another")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the cloud")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q; every value goes with a flag", fs.Arg(0))
	}
	if *cloudURL == "" || *code == "" {
		return usageError("need --cloud URL and --code CODE (the operator makes codes with 'tillpoint cloud enroll-code')")
	}
	c := enroll.NewClient()
	c.HTTP.Timeout = *timeout
	c.ExpectCloudKeyID = *expectKey
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("read --ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca %s holds no PEM certificate", *caFile)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c.HTTP.Transport = tr
	}
	st, err := c.Enroll(ctx, *cloudURL, *code, *dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "enrolled terminal %s of store %s in program %s\n", st.Terminal, st.Store, st.Program)
	fmt.Fprintf(m.Stdout, "terminal key %s, cloud key %s, state in %s\n", st.TerminalKeyID, st.CloudKeyID, st.Dir)
	return nil
}
