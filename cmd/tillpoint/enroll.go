package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/sync/enroll"
)

const enrollHelp = `
Enrolls this terminal with the cloud ledger. It generates the terminal's
Ed25519 key (file mode 0600), registers its public key with the cloud using
the one-time code the operator made with 'tillpoint cloud enroll-code', and
stores the cloud's public key, the program, store and terminal IDs in the
state directory the agent reads. A code works once and expires.

To replace a till, enroll the new one with a code for the same terminal
ID. The cloud then names the journal epoch the new till writes from, one
above any it holds for that ID, so that none of its sales is taken for
one of the old till's; the old till's key stops working.

The cloud also hands out the store's roster (every till's ID, gossip address
and public key), the store's gossip keyring and the program's card key; both
keys are sealed to a one-time key of this enrollment and written mode 0600.
--advertise is this till's gossip address on the store LAN (the agent's
peers.bind, or peers.advertise), which the other tills dial.

A code on the command line is visible to other users of the machine (ps)
while enrollment runs: pass --code - to read it from standard input, or
set TILLPOINT_ENROLL_CODE instead.

--show prints an enrolled terminal's identity instead: its ID, store, public
key and key ID, and the [[peers.roster]] entry that lists it in another
till's agent.toml (for a store without a cloud roster).

Examples:
  tillpoint enroll --cloud https://cloud.example.com --code K7QF-2MXD-9RTA-WC3P --advertise 192.168.1.21:7946
  echo K7QF-2MXD-9RTA-WC3P | tillpoint enroll --cloud https://cloud.example.com --code -
  tillpoint enroll --show --dir /var/lib/tillpoint/terminal
`

func (m *Main) runEnroll(ctx context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "enroll", "enroll --cloud URL --code CODE [--advertise IP:PORT] [--dir STATE]\n       tillpoint enroll --show [--dir STATE]", enrollHelp)
	cloudURL := fs.String("cloud", "", "the cloud's base URL, e.g. https://cloud.example.com")
	code := fs.String("code", "", "the one-time enrollment code from the operator; - reads it from standard input (or set TILLPOINT_ENROLL_CODE)")
	dir := fs.String("dir", "/var/lib/tillpoint/terminal", "the terminal's state directory")
	caFile := fs.String("ca", "", "PEM file of CA certificates to trust for the cloud (default: the system's)")
	expectKey := fs.String("cloud-key-id", "", "the cloud key fingerprint 'tillpoint cloud' printed at start; enrollment fails if the cloud sends another")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the cloud")
	advertise := fs.String("advertise", "", "this till's gossip address IP:PORT on the store LAN, for the store roster")
	show := fs.Bool("show", false, "print the enrolled terminal's ID, store and public key, and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q; every value goes with a flag", fs.Arg(0))
	}
	if *show {
		return m.showIdentity(*dir)
	}
	if *code == "" {
		*code = m.Getenv("TILLPOINT_ENROLL_CODE")
	}
	if *code == "-" {
		var err error
		if *code, err = readCodeLine(m.Stdin); err != nil {
			return err
		}
	}
	if *cloudURL == "" || *code == "" {
		return usageError("need --cloud URL and --code CODE (the operator makes codes with 'tillpoint cloud enroll-code')")
	}
	c := enroll.NewClient()
	c.HTTP.Timeout = *timeout
	c.ExpectCloudKeyID = *expectKey
	c.Advertise = *advertise
	c.Warn = func(msg string) { fmt.Fprintln(m.Stderr, "warning:", msg) }
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
	if r := st.Roster; r != nil {
		fmt.Fprintf(m.Stdout, "store roster version %d: %d till(s), %d gossip key(s), card key %s\n",
			r.Version(), len(r.Doc.Terminals), len(r.GossipKeys), map[bool]string{true: "received", false: "not sent by the cloud"}[len(r.CardKey) > 0])
	} else {
		fmt.Fprintln(m.Stdout, "no store roster yet: the agent fetches it from the cloud")
	}
	return nil
}

// showIdentity prints an enrolled terminal's identity: what another till's
// [[peers.roster]] needs, and nothing secret.
func (m *Main) showIdentity(dir string) error {
	st, err := enroll.Load(dir)
	if err != nil {
		return err
	}
	pub := base64.StdEncoding.EncodeToString(st.Key.Public().(ed25519.PublicKey))
	fmt.Fprintf(m.Stdout, "terminal    %s\nstore       %s\nprogram     %s\npublic key  %s\nkey id      %s\ncloud       %s (key %s)\n",
		st.Terminal, st.Store, st.Program, pub, st.TerminalKeyID, st.CloudURL, st.CloudKeyID)
	addr := ""
	if r := st.Roster; r != nil {
		fmt.Fprintf(m.Stdout, "roster      version %d, %d till(s)\n", r.Version(), len(r.Doc.Terminals))
		for _, t := range r.Doc.Terminals {
			if t.ID == st.Terminal {
				addr = t.Addr
			}
		}
	}
	fmt.Fprintf(m.Stdout, "\n[[peers.roster]]\nterminal = %q\naddress = %q\npublic_key = %q\n", st.Terminal, addr, pub)
	return nil
}

// readCodeLine reads an enrollment code from the first line of r.
func readCodeLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the enrollment code from standard input: %w", err)
	}
	code := strings.TrimSpace(line)
	if code == "" {
		return "", usageError("--code - read no code from standard input; pipe the code the operator gave you")
	}
	return code, nil
}
