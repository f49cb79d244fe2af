package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// 'cloud check' on a ledger that is not there (a typo in --db, a volume
// not mounted) must fail, not create an empty ledger and report it sound.
func TestCloudCheckOnAMissingLedgerFails(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "not-mounted", "ledger.db")
	code, out, errOut := run(t, "cloud", "check", "--db", "sqlite:"+db)
	_, statErr := os.Stat(db)
	if code == 0 || strings.Contains(out, "ok: every balance matches") || statErr == nil {
		t.Errorf("cloud check on missing %s: exit %d, created it: %v, out %q %q; want a failure that names the missing ledger",
			db, code, statErr == nil, out, errOut)
	}
}

// 'cloud check DB' (the --db forgotten) must not check another ledger.
func TestCloudCheckRefusesAStrayArgument(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, out, errOut := run(t, "cloud", "check", "--db", "sqlite:"+filepath.Join(dir, "a.db"), "sqlite:"+filepath.Join(dir, "b.db"))
	if code != 2 {
		t.Errorf("cloud check with a stray argument: exit %d, out %q %q; want a usage error (2)", code, out, errOut)
	}
}

// The admin token is a secret like the signing and card keys, which the
// same command refuses when group or others can read them (mode &077).
func TestGroupReadableAdminTokenFileIsRefused(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(file, []byte("0123456789abcdef0123456789abcdef\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	m := &Main{Getenv: func(string) string { return "" }}
	if tok, err := m.adminToken(file); err == nil {
		t.Errorf("admin token file of mode 0640 accepted (%d bytes); want it refused like cloud.key and card.key", len(tok))
	}
}
