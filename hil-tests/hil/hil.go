package hil

import (
	"os"
	"os/exec"
	"testing"
)

// EnvRequire is the environment variable that turns skips into failures.
const EnvRequire = "TILLPOINT_HIL"

// Required reports whether missing hardware-in-the-loop tools fail tests.
func Required() bool { return os.Getenv(EnvRequire) == "require" }

// Missing skips the test with why, or fails it when HIL tests are required.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Required() {
		t.Fatalf("hil: %s (%s=require, so this fails instead of skipping; run 'sudo make deps')", why, EnvRequire)
	}
	t.Skipf("hil: %s; run 'sudo make deps' to install it, or set %s=require to make this a failure", why, EnvRequire)
}

// NeedCommand skips or fails the test when the named program is not on PATH
// (nor in /usr/sbin or /sbin, where Debian puts daemons) and returns its path.
func NeedCommand(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin/", "/sbin/", "/usr/local/sbin/"} {
		if st, err := os.Stat(dir + name); err == nil && !st.IsDir() {
			return dir + name
		}
	}
	Missing(t, name+" is not installed")
	return ""
}
