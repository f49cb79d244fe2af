package cloud_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

func TestAllowanceBoundsOfflineRisk(t *testing.T) {
	p := cloud.DefaultAllowancePolicy()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name          string
		snap          loyalty.Snapshot
		lapsing       loyalty.Points
		lastOverspend time.Time
		want          loyalty.Points
	}{
		{"half the balance", loyalty.Snapshot{Member: "m", Balance: 300}, 0, time.Time{}, 150},
		{"capped", loyalty.Snapshot{Member: "m", Balance: 100000}, 0, time.Time{}, 2000},
		{"card without a member", loyalty.Snapshot{Balance: 300}, 0, time.Time{}, 0},
		{"member in debt", loyalty.Snapshot{Member: "m", Balance: 300, Debt: 1}, 0, time.Time{}, 0},
		{"recent overspend", loyalty.Snapshot{Member: "m", Balance: 300}, 0, now.Add(-24 * time.Hour), 0},
		{"overspend long ago", loyalty.Snapshot{Member: "m", Balance: 300}, 0, now.Add(-60 * 24 * time.Hour), 150},
		{"empty balance", loyalty.Snapshot{Member: "m"}, 0, time.Time{}, 0},
		{"points lapsing within it left out", loyalty.Snapshot{Member: "m", Balance: 300}, 100, time.Time{}, 100},
		{"all of it lapsing within it", loyalty.Snapshot{Member: "m", Balance: 300}, 300, time.Time{}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := p.Allowance(tc.snap, 1, tc.lapsing, tc.lastOverspend, now)
			if a == nil || a.Points != tc.want || !a.Expires.Equal(now.Add(p.TTL)) {
				t.Errorf("got %+v, want %d points until %v", a, tc.want, now.Add(p.TTL))
			}
			if a.Points > tc.snap.Balance {
				t.Errorf("allowance %d exceeds the balance %d", a.Points, tc.snap.Balance)
			}
		})
	}
}

func TestAllowanceIsSplitBetweenAMembersCards(t *testing.T) {
	p := cloud.DefaultAllowancePolicy()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		balance loyalty.Points
		cards   int
		want    loyalty.Points
	}{{300, 0, 150}, {300, 1, 150}, {300, 3, 50}, {301, 2, 75}, {100000, 4, 500}} {
		a := p.Allowance(loyalty.Snapshot{Member: "m", Balance: tc.balance}, tc.cards, 0, time.Time{}, now)
		if a.Points != tc.want || a.Points*loyalty.Points(max(tc.cards, 1)) > min(tc.balance*loyalty.Points(p.Percent)/100, p.MaxPoints) {
			t.Errorf("balance %d, %d cards: got %d points per card, want %d", tc.balance, tc.cards, a.Points, tc.want)
		}
	}
}

func TestSequenceErrorMatchesItsKindOnly(t *testing.T) {
	kinds := map[string]error{cloud.SeqGap: cloud.ErrGap, cloud.SeqRewind: cloud.ErrRewind, cloud.SeqDiverged: cloud.ErrDiverged, cloud.SeqChain: cloud.ErrChain}
	for kind, want := range kinds {
		var err error = &cloud.SequenceError{Kind: kind, Terminal: "t1", Epoch: 1, Watermark: 41, First: 45, Last: 50}
		for other, sentinel := range kinds {
			if got := errors.Is(err, sentinel); got != (other == kind) {
				t.Errorf("%s: errors.Is(%v) = %v, want %v", kind, sentinel, got, other == kind)
			}
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: does not match %v", kind, want)
		}
	}
	if got := (&cloud.SequenceError{Kind: cloud.SeqGap, Terminal: "t1", Epoch: 1, Watermark: 41}).Error(); got == "" {
		t.Errorf("empty message")
	}
}

func TestProgramAccountsShardByTerminal(t *testing.T) {
	seen := map[string]bool{}
	for _, term := range []string{"t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"} {
		a := cloud.ProgramAccount(cloud.AccountIssued, term)
		if a != cloud.ProgramAccount(cloud.AccountIssued, term) {
			t.Errorf("%s: shard not stable", term)
		}
		seen[a] = true
	}
	if len(seen) < 3 {
		t.Errorf("8 terminals hit %d issuance shards, want them spread", len(seen))
	}
}
