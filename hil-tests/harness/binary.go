package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Package is the import path of the binary under test.
const Package = "github.com/tillpoint/tillpoint/cmd/tillpoint"

// builder builds the binary once per test process.
type builder struct {
	once sync.Once
	dir  string
	path string
	took time.Duration
	err  error
}

// build is the one build of this test process: the only package-level
// state here, since building the binary per test would cost a minute each.
var build builder

// Main runs the tests of a package that uses the binary and removes the
// binary's build directory afterwards. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	return code
}

// Binary returns the path of the tillpoint binary, built with 'go build'
// the first time a test of this process asks for it.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		start := time.Now()
		build.dir, build.err = os.MkdirTemp("", "tillpoint-hil-bin-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "tillpoint")
		// go test puts its own go command first on PATH.
		cmd := exec.Command("go", "build", "-o", build.path, "-ldflags", "-X main.Version=hil", Package)
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build %s: %w\n%s", Package, err, out)
		}
		build.took = time.Since(start)
	})
	if build.err != nil {
		t.Fatalf("harness: %v", build.err)
	}
	return build.path
}
