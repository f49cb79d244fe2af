package cloud_test

import (
	"slices"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
)

// TestFlagNamesAreStableAndComplete: metrics and reports name flags by
// these strings, so each flag has its own, and renaming one breaks this.
func TestFlagNamesAreStableAndComplete(t *testing.T) {
	all := cloud.FlagReevaluated | cloud.FlagRulesUnknown | cloud.FlagClockAhead | cloud.FlagOverspend | cloud.FlagHeld | cloud.FlagNoCard
	want := []string{"reevaluated", "rules_unknown", "clock_ahead", "overspend", "held", "no_card"}
	if got := all.Names(); !slices.Equal(got, want) {
		t.Errorf("names of every flag: %q, want %q", got, want)
	}
	if got := (cloud.FlagOverspend | cloud.FlagClockAhead).Names(); !slices.Equal(got, []string{"clock_ahead", "overspend"}) {
		t.Errorf("names of two flags: %q, want clock_ahead and overspend in bit order", got)
	}
	if got := cloud.Flags(0).Names(); len(got) != 0 {
		t.Errorf("names of no flag: %q, want none", got)
	}
	if got := cloud.Flags(1 << 9).Names(); !slices.Equal(got, []string{"flag9"}) {
		t.Errorf("names of an unknown bit: %q, want flag9", got)
	}
}
