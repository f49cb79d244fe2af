package e2e_test

import (
	"os"
	"testing"

	"github.com/tillpoint/tillpoint/hil-tests/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
