package loyalty

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckNameRefusesWhatAColumnOrLogCannotCarry(t *testing.T) {
	for _, ok := range []string{"T-01", "store 12", "Kasse 3 – Köln", strings.Repeat("x", MaxFieldLen)} {
		if err := CheckName("terminal", ok); err != nil {
			t.Errorf("CheckName(%q): %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "T\x001", "T\n1", "T\x7f1", "\xff", strings.Repeat("x", MaxFieldLen+1), "T1 ", " T1", "T1\u00a0"} {
		if err := CheckName("terminal", bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CheckName(%q): %v, want ErrInvalidName", bad, err)
		}
	}
}

// An op whose text holds a NUL never enters a journal: PostgreSQL's text
// columns could not store it in the cloud.
func TestOpWithNULIsInvalid(t *testing.T) {
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	base := Op{ID: OpID{1}, Kind: OpAdjust, Terminal: "T1", Store: "S1", WallTime: at, Member: "m1", Points: 5, Reason: "goodwill"}
	if err := base.Validate(); err != nil {
		t.Fatalf("valid adjust: %v", err)
	}
	for name, mutate := range map[string]func(*Op){
		"member": func(o *Op) { o.Member = "m\x001" }, "store": func(o *Op) { o.Store = "S\x00" },
		"reason": func(o *Op) { o.Reason = "good\x00will" }, "cashier": func(o *Op) { o.Cashier = "\x00" },
	} {
		o := base
		mutate(&o)
		if err := o.Validate(); !errors.Is(err, ErrInvalidOp) {
			t.Errorf("NUL in %s: %v, want ErrInvalidOp", name, err)
		}
	}
}
