package harness

import (
	"os"
	"testing"
	"time"
)

// Eventually polls cond every 20 ms until it reports true or d passes,
// then fails the test with what and cond's last explanation.
func Eventually(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, d, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// EnvGaps makes Gap fail instead of skip when set to "fail".
const EnvGaps = "TILLPOINT_HIL_GAPS"

// Gap stops a scenario that the binary cannot run yet because a part of
// it (named in why) is not built: it skips with a message starting "GAP:",
// so the report shows what is missing, or fails when TILLPOINT_HIL_GAPS=fail.
// It is for missing features found at run time, never for a wrong result.
func Gap(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(EnvGaps) == "fail" {
		t.Fatalf("GAP: %s (%s=fail)", why, EnvGaps)
	}
	t.Skipf("GAP: %s", why)
}

// Defect stops a check that found a wrong result in a part another team
// owns and that is reported to them: it skips with "DEFECT: ..." so the
// suite stays usable for everyone else, and fails when
// TILLPOINT_HIL_GAPS=fail. Call it only with the evidence in why.
func Defect(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(EnvGaps) == "fail" {
		t.Fatalf("DEFECT: %s (%s=fail)", why, EnvGaps)
	}
	t.Skipf("DEFECT: %s", why)
}
