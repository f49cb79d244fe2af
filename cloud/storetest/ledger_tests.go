package storetest

import (
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

func testLotOrder(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	tl.Send(t, l, tl.Earn(c, 1000, 10)) // lot A, expires first
	expA := tl.Now.AddDate(1, 0, 0)
	tl.Now = tl.Now.Add(60 * 24 * time.Hour)
	tl.Send(t, l, tl.Earn(c, 2000, 20)) // lot B
	expB := tl.Now.AddDate(1, 0, 0)
	if s := snap(t, l, c); len(s.Expiring) != 0 {
		t.Errorf("expiring a year ahead: got %+v, want none (beyond the snapshot horizon)", s.Expiring)
	}
	s, err := l.Snapshot(ctx, c, "s1", expA.AddDate(0, 0, -20))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Expiring) != 2 || s.Expiring[0].Points != 10 || !s.Expiring[0].At.Equal(expA) || s.Expiring[1].Points != 20 || !s.Expiring[1].At.Equal(expB) {
		t.Errorf("expiring: got %+v, want 10 at %v then 20 at %v", s.Expiring, expA, expB)
	}
	tl.Send(t, l, tl.Redeem(c, 15, false))
	// Soonest first: A is used up, B keeps 15, so nothing lapses with A.
	res, err := l.Expire(ctx, expA.Add(time.Hour))
	if err != nil || res.Points != 0 {
		t.Errorf("expire at A's date: got %+v, %v; want nothing lapsed (A was redeemed first)", res, err)
	}
	wantBalance(t, l, c, 15, 0)
	res, err = l.Expire(ctx, expB)
	if err != nil || res.Points != 15 || res.Lots != 1 {
		t.Errorf("expire at B's date: got %+v, %v; want 15 points of 1 lot", res, err)
	}
	wantBalance(t, l, c, 0, 0)
}

// testAckExpiring defends the expiring points in the snapshots of an
// ack, which the ledger reads only for owners whose soonest open lot
// lapses within the horizon: one card with points lapsing in 30 days and
// points earned now, one with only points earned now.
func testAckExpiring(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	soon, late := Card(1), Card(2)
	tl.Send(t, l, tl.Earn(soon, 1000, 10))
	lapse := tl.Now.AddDate(1, 0, 0)
	tl.Now = lapse.AddDate(0, 0, -30)
	a := tl.Send(t, l, tl.Earn(late, 2000, 20), tl.Earn(soon, 500, 5))
	if len(a.Snapshots) != 2 {
		t.Fatalf("ack has %d snapshots, want 2", len(a.Snapshots))
	}
	for _, s := range a.Snapshots {
		switch s.Card {
		case soon:
			if s.Balance != 15 || len(s.Expiring) != 1 || s.Expiring[0].Points != 10 || !s.Expiring[0].At.Equal(lapse) {
				t.Errorf("ack snapshot of the card with points lapsing: balance %d, expiring %+v; want 15, 10 points at %v", s.Balance, s.Expiring, lapse)
			}
		case late:
			if s.Balance != 20 || len(s.Expiring) != 0 {
				t.Errorf("ack snapshot of the card with new points only: balance %d, expiring %+v; want 20, none", s.Balance, s.Expiring)
			}
		default:
			t.Errorf("ack snapshot of card %x, which the batch did not name", s.Card)
		}
	}
}

func testOverspend(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	tl.Send(t, l, tl.Enroll(c, "alice"), tl.Earn(c, 3000, 30))
	a := tl.Send(t, l, tl.Redeem(c, 100, true))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", -100)
	if a.Results[0].Flags&cloud.FlagOverspend == 0 {
		t.Errorf("offline redeem beyond the balance: flags %b, want FlagOverspend", a.Results[0].Flags)
	}
	s := a.Snapshots[0]
	if s.Balance != 0 || s.Debt != 70 || s.Allowance == nil || s.Allowance.Points != 0 {
		t.Errorf("after overspend: got balance %d debt %d allowance %+v, want 0, 70 and a zero allowance", s.Balance, s.Debt, s.Allowance)
	}
	tl.Send(t, l, tl.Earn(c, 5000, 50))
	wantBalance(t, l, c, 0, 20)
	tl.Send(t, l, tl.Earn(c, 4000, 40))
	wantBalance(t, l, c, 20, 0)
	rep, err := l.Check(ctx)
	if err != nil || rep.Debt != 0 || rep.Liability != 20 || rep.Redeemed != 30 {
		t.Errorf("check: got %+v, %v; want no debt, liability 20, 30 redeemed from balances", rep, err)
	}
	if db, ok := l.(interface{ DB() *sql.DB }); ok {
		var short, over int64
		db.DB().QueryRowContext(ctx, `SELECT balance FROM accounts WHERE id = 'shortfall|s1'`).Scan(&short)
		db.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM overspends`).Scan(&over)
		if short != 70 || over != 1 {
			t.Errorf("store shortfall and overspend records: got %d and %d, want 70 and 1", short, over)
		}
	}
}

func testReeval(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	a := tl.Send(t, l, tl.Enroll(c, "carol"), tl.Earn(c, 1000, 15), tl.Earn(c, 1000, 5), tl.Earn(c, 1000, 10))
	for i, want := range []loyalty.Points{10, 10, 10} {
		r := a.Results[i+1]
		wantResult(t, r, cloud.StatusApplied, "", want)
		if flagged := r.Flags&cloud.FlagReevaluated != 0; flagged != (i < 2) {
			t.Errorf("earn %d: reevaluated flag %v, want %v", i, flagged, i < 2)
		}
	}
	// 30 qualifying; 70 more reach Silver (x1.5), which the terminal did not know.
	tl.Send(t, l, tl.Earn(c, 7000, 70))
	a = tl.Send(t, l, tl.Earn(c, 1000, 10))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 15)
	if s := a.Snapshots[0]; s.Tier != "Silver" || s.NextTier != "Gold" || s.ToNextTier != 1000-115 {
		t.Errorf("tier: got %q next %q in %d, want Silver, Gold in 885", s.Tier, s.NextTier, s.ToNextTier)
	}
	unknown := tl.Earn(c, 1000, 12)
	unknown.RulesVersion = 7
	a = tl.Send(t, l, unknown)
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 12)
	if a.Results[0].Flags&cloud.FlagRulesUnknown == 0 {
		t.Errorf("earn under unpublished rules: flags %b, want FlagRulesUnknown", a.Results[0].Flags)
	}
	wantBalance(t, l, c, 10+10+10+70+15+12, 0)
	rep, err := l.Check(ctx)
	if err != nil || rep.Adjusted != 5 || rep.Earned != 15+5+10+70+10+12 {
		t.Errorf("check: got adjusted %d earned %d, %v; want the re-evaluation as a separate +5 adjustment over earned 122", rep.Adjusted, rep.Earned, err)
	}
	// A batch looks each rules version up once, the unknown ones too: the
	// earn between them must still be figured with its own rules.
	first, second := tl.Earn(c, 1000, 12), tl.Earn(c, 1000, 9)
	first.RulesVersion, second.RulesVersion = 7, 7
	a = tl.Send(t, l, first, tl.Earn(c, 1000, 10), second)
	for i, want := range []struct {
		points  loyalty.Points
		unknown bool
	}{{12, true}, {15, false}, {9, true}} {
		wantResult(t, a.Results[i], cloud.StatusApplied, "", want.points)
		if got := a.Results[i].Flags&cloud.FlagRulesUnknown != 0; got != want.unknown {
			t.Errorf("earn %d of a batch mixing rules versions: rules-unknown flag %v, want %v", i, got, want.unknown)
		}
	}
}

// testRedeemAtItsRewardsCost: the cloud checks a redeem's points against
// the cost of the reward it names under its rules version. The till's
// figure stands (the customer was charged it and has the reward) and a
// difference is flagged for review, either way: a coffee (500 points
// under rules 2) recorded for 1 point or for 600. A reward or a version
// the cloud does not know is flagged; a redeem naming no reward is taken
// as it is.
func testRedeemAtItsRewardsCost(t *testing.T, l cloud.Ledger) {
	r := TestRules(2)
	r.Rewards = []loyalty.Reward{{ID: "coffee", Name: "Coffee", Cost: 500}}
	if err := l.PublishRules(ctx, r, Start()); err != nil {
		t.Fatal(err)
	}
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	tl.Send(t, l, tl.Enroll(c, "rita"), tl.Earn(c, 200000, 2000))
	redeem := func(pts loyalty.Points, reward string, version uint32) loyalty.Op {
		op := tl.Redeem(c, pts, false)
		op.Reward, op.RulesVersion = reward, version
		return op
	}
	cases := []struct {
		name  string
		op    loyalty.Op
		want  loyalty.Points
		flags cloud.Flags
	}{
		{"coffee for 1 point", redeem(1, "coffee", 2), -1, cloud.FlagRewardCost},
		{"coffee for 600 points", redeem(600, "coffee", 2), -600, cloud.FlagRewardCost},
		{"coffee at its cost", redeem(500, "coffee", 2), -500, 0},
		{"a reward rules 2 lack", redeem(1, "no-such-reward", 2), -1, cloud.FlagRulesUnknown},
		{"rules never published", redeem(1, "coffee", 9), -1, cloud.FlagRulesUnknown},
		{"no reward named", redeem(7, "", 2), -7, 0},
	}
	ops := make([]loyalty.Op, len(cases))
	for i, tc := range cases {
		ops[i] = tc.op
	}
	a := tl.Send(t, l, ops...)
	for i, tc := range cases {
		if got := a.Results[i]; got.Status != cloud.StatusApplied || got.Points != tc.want || got.Flags != tc.flags {
			t.Errorf("%s: got %s %d points, flags %v; want %d points, flags %v", tc.name, got.Status, got.Points, got.Flags.Names(), tc.want, tc.flags.Names())
		}
	}
	wantBalance(t, l, c, 2000-1-600-500-1-1-7, 0)
	if rep, err := l.Check(ctx); err != nil {
		t.Errorf("check: %v (%v)", err, rep.Problems)
	}
}

// testReevalBeyondOpBound defends conservation's arithmetic: the ledger
// bounds one op's points (loyalty.MaxOpPoints, a trillion) so that no sum
// overflows int64, and rules cannot be published that break the bound
// with their figures alone. Where the cloud's own figure would still pass
// it (a bonus at the bound on top of the base), the re-evaluation and a
// claim post the terminal's figure, flagged, and adjust nothing: never a
// posting beyond the bound, a wrapped balance, or a batch that halts and
// blocks its terminal for good.
func testReevalBeyondOpBound(t *testing.T, l cloud.Ledger) {
	r := TestRules(2)
	r.Campaigns = []loyalty.Campaign{{ID: "typo", Name: "typo", Start: Start().Add(-time.Hour), End: Start().AddDate(5, 0, 0), Bonus: 3 << 61}}
	if err := l.PublishRules(ctx, r, Start()); !errors.Is(err, loyalty.ErrInvalidRules) {
		t.Errorf("rules with a bonus beyond the bound: got %v, want ErrInvalidRules", err)
	}
	r.Campaigns[0].Bonus = loyalty.MaxOpPoints
	if err := l.PublishRules(ctx, r, Start()); err != nil {
		t.Fatal(err)
	}
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	for i := range 3 {
		e := tl.Earn(c, 1000, 10)
		e.RulesVersion = 2
		a := tl.Send(t, l, e)
		wantResult(t, a.Results[0], cloud.StatusApplied, "", 10)
		if f := a.Results[0].Flags; f&cloud.FlagRulesUnknown == 0 || f&cloud.FlagReevaluated != 0 {
			t.Errorf("earn %d beyond the bound: flags %v, want rules_unknown only", i, f.Names())
		}
	}
	wantBalance(t, l, c, 30, 0)
	cardless := tl.Earn(loyalty.CardHash{}, 1000, 10)
	cardless.RulesVersion = 2
	tl.Send(t, l, cardless)
	got, err := l.Claim(ctx, cardless.ID, c, "s1", tl.Now)
	if err != nil || got.Points != 10 || got.Flags&cloud.FlagRulesUnknown == 0 {
		t.Errorf("claim beyond the bound: got %d points, flags %v, %v; want the terminal's 10, rules_unknown", got.Points, got.Flags.Names(), err)
	}
	wantBalance(t, l, c, 40, 0)
}

func testHeld(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(5)
	a := tl.Send(t, l, tl.Earn(c, 1000, 10), tl.Redeem(c, 25, true), tl.Earn(c, 3000, 30))
	if a.Results[0].Flags&cloud.FlagHeld == 0 {
		t.Errorf("earn on an unlinked card: flags %b, want FlagHeld", a.Results[0].Flags)
	}
	if s := a.Snapshots[0]; s.Member != "" || s.Balance != 15 || s.Allowance.Points != 0 {
		t.Errorf("held card: got member %q balance %d allowance %d, want no member, 15, none", s.Member, s.Balance, s.Allowance.Points)
	}
	a = tl.Send(t, l, tl.Earn(c, 500, 5), tl.Enroll(c, "dave"), tl.Earn(c, 1000, 10))
	if a.Results[2].Flags&cloud.FlagHeld != 0 {
		t.Errorf("earn after enroll: flags %b, want not held", a.Results[2].Flags)
	}
	if s := a.Snapshots[0]; s.Member != "dave" || s.Balance != 30 || s.Debt != 0 {
		t.Errorf("after enroll: got member %q balance %d debt %d, want dave 30 0", s.Member, s.Balance, s.Debt)
	}
	// A redeem reversed after the link returns points to the lots that moved.
	tl.Send(t, l, tl.Enroll(Card(6), "erin"))
	held := Card(7)
	red := tl.Redeem(held, 8, true)
	tl.Send(t, l, tl.Earn(held, 1000, 10), red, tl.Enroll(held, "erin"), tl.Reverse(red))
	wantBalance(t, l, held, 10, 0)
	wantBalance(t, l, Card(6), 10, 0)
}

func testCardLinked(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	a := tl.Send(t, l, tl.Enroll(Card(1), "alice"), tl.Enroll(Card(1), "bob"), tl.Enroll(Card(1), "alice"), tl.Enroll(Card(2), "alice"), tl.Earn(Card(2), 1000, 10))
	wantResult(t, a.Results[1], cloud.StatusRejected, cloud.ReasonCardLinked, 0)
	wantResult(t, a.Results[2], cloud.StatusApplied, "", 0)
	wantBalance(t, l, Card(1), 10, 0) // one member, two cards
}

func testExpire(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	for i := 1; i <= 3; i++ {
		tl.Send(t, l, tl.Earn(Card(i), 1000*int64(i), loyalty.Points(10*i)))
	}
	if res, err := l.Expire(ctx, Start().AddDate(0, 11, 0)); err != nil || res.Lots != 0 {
		t.Errorf("expire before the date: got %+v, %v; want nothing", res, err)
	}
	res, err := l.Expire(ctx, Start().AddDate(1, 0, 1))
	if err != nil || res.Lots != 3 || res.Points != 60 {
		t.Errorf("expire after the date: got %+v, %v; want 3 lots, 60 points", res, err)
	}
	rep, err := l.Check(ctx)
	if err != nil || rep.Expired != 60 || rep.Liability != 0 {
		t.Errorf("check: got %+v, %v; want 60 expired and no liability", rep, err)
	}
}

func testClockAhead(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	ahead := tl.Earn(Card(1), 1000, 10)
	ahead.WallTime = ahead.WallTime.Add(time.Hour)
	a := tl.Send(t, l, ahead, tl.Earn(Card(1), 1000, 10))
	if a.Results[0].Flags&cloud.FlagClockAhead == 0 || a.Results[1].Flags&cloud.FlagClockAhead != 0 {
		t.Errorf("flags: got %b and %b, want only the first FlagClockAhead", a.Results[0].Flags, a.Results[1].Flags)
	}
	wantBalance(t, l, Card(1), 20, 0)
}

func testSnapshots(t *testing.T, l cloud.Ledger) {
	t1, t2 := NewTill(t, l, "t1", "s1"), NewTill(t, l, "t2", "s2")
	t1.Send(t, l, t1.Enroll(Card(1), "m1"), t1.Earn(Card(1), 20000, 200), t1.Earn(Card(2), 1000, 10))
	t2.Send(t, l, t2.Earn(Card(3), 1000, 10))
	now := Start().Add(time.Hour)
	snaps, err := l.Snapshots(ctx, "s1", loyalty.CardHash{}, 10, now)
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots of s1: got %d, %v; want the 2 cards seen there", len(snaps), err)
	}
	for _, s := range snaps {
		switch s.Card {
		case Card(1):
			if s.Member != "m1" || s.Balance != 200 || s.Tier != "Silver" || s.Allowance.Points != 100 || !s.Allowance.Expires.Equal(now.Add(24*time.Hour)) {
				t.Errorf("member card: got %+v allowance %+v, want m1, 200, Silver, 100 points for 24h", s, s.Allowance)
			}
		case Card(2):
			if s.Member != "" || s.Balance != 10 || s.Allowance.Points != 0 {
				t.Errorf("held card: got %+v, want 10 points and no allowance", s)
			}
		default:
			t.Errorf("snapshot of a card not seen at s1: %s", s.Card.Short())
		}
	}
	if snaps[0].Card.String() > snaps[1].Card.String() {
		t.Errorf("snapshots not ordered by card hash")
	}
	never, err := l.Snapshot(ctx, Card(99), "s1", now)
	if err != nil || never.Balance != 0 || never.Card != Card(99) || never.Allowance.Points != 0 {
		t.Errorf("unknown card: got %+v, %v; want an empty snapshot", never, err)
	}
	if _, err := l.Snapshots(ctx, "s1", loyalty.CardHash{}, 0, now); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("page of 0 snapshots: got %v, want ErrInvalidInput", err)
	}
}

// testSnapshotPages: pages of snapshots, each starting after the last
// card of the one before, list every card seen at the store once, in
// card-hash order, and end with an empty page.
func testSnapshotPages(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	var ops []loyalty.Op
	for i := range 25 {
		ops = append(ops, tl.Earn(Card(i), int64(i+1)*100, loyalty.Points(i+1)))
	}
	tl.Send(t, l, ops...)
	now := Start().Add(time.Hour)
	var after loyalty.CardHash
	seen := map[loyalty.CardHash]loyalty.Points{}
	for pages := 0; ; pages++ {
		page, err := l.Snapshots(ctx, "s1", after, 7, now)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(page) > 7 || pages > 4 {
			t.Fatalf("page %d: %d snapshots, want at most 7 and 4 pages", pages, len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, s := range page {
			if string(s.Card[:]) <= string(after[:]) {
				t.Errorf("page %d: card %s does not sort after %s", pages, s.Card.Short(), after.Short())
			}
			if _, dup := seen[s.Card]; dup {
				t.Errorf("page %d: card %s listed twice", pages, s.Card.Short())
			}
			seen[s.Card] = s.Balance
			after = s.Card
		}
	}
	for i := range 25 {
		if got, ok := seen[Card(i)]; !ok || got != loyalty.Points(i+1) {
			t.Errorf("card %d: got balance %d (listed %v), want %d", i, got, ok, i+1)
		}
	}
}

// testAllowanceLeavesOutPointsLapsingWithinIt defends invariant 4: an
// offline allowance never lets a member spend points that lapse before
// the allowance ends. A member whose 100 points lapse within the hour
// gets a snapshot; the points lapse; the member then redeems offline,
// within the allowance and its validity, what the snapshot allowed: the
// redeem must not overspend.
func testAllowanceLeavesOutPointsLapsingWithinIt(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	tl.Send(t, l, tl.Enroll(c, "amy"), tl.Earn(c, 10000, 100))
	probe, err := l.Snapshot(ctx, c, "s1", Start().AddDate(1, 0, -1))
	if err != nil || len(probe.Expiring) != 1 {
		t.Fatalf("snapshot a day before the points lapse: got %+v, %v; want 100 points expiring", probe, err)
	}
	lapse := probe.Expiring[0].At
	s, err := l.Snapshot(ctx, c, "s1", lapse.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot says itself that all 100 points lapse within the hour.
	if s.Balance != 100 || len(s.Expiring) != 1 || s.Expiring[0].Points != 100 || !s.Allowance.Expires.After(lapse) {
		t.Fatalf("snapshot an hour before the points lapse: got %+v allowance %+v", s, s.Allowance)
	}
	if s.Allowance.Points > 0 {
		t.Errorf("allowance %d points until %v, but every point of the balance lapses at %v, within it", s.Allowance.Points, s.Allowance.Expires, lapse)
	}
	if res, err := l.Expire(ctx, lapse.Add(time.Minute)); err != nil || res.Points != 100 {
		t.Fatalf("expire: got %+v, %v; want 100 points lapsed", res, err)
	}
	tl.Now = lapse.Add(2 * time.Hour) // the allowance is still valid
	if !s.Allowance.Valid(tl.Now) || s.Allowance.Points == 0 {
		return
	}
	a := tl.Send(t, l, tl.Redeem(c, s.Allowance.Points, true))
	if a.Results[0].Flags&cloud.FlagOverspend != 0 {
		t.Errorf("an offline redeem of %d points within a valid allowance overspent: the member now owes %d", s.Allowance.Points, a.Snapshots[0].Debt)
	}
}

// testAllowancesOfOneMembersCards defends invariant 4: a member's
// offline allowances at a store, over all the member's cards, never
// exceed the member's balance.
// One member, three cards, 100 points: each card's snapshot allows 50, so
// the member could redeem 150 offline at one store, each redeem within
// its card's allowance. The allowance is split between the cards.
func testAllowancesOfOneMembersCards(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	cards := []loyalty.CardHash{Card(1), Card(2), Card(3)}
	tl.Send(t, l, tl.Enroll(cards[0], "max"), tl.Enroll(cards[1], "max"), tl.Enroll(cards[2], "max"), tl.Earn(cards[0], 10000, 100))
	snaps, err := l.Snapshots(ctx, "s1", loyalty.CardHash{}, 10, tl.Now)
	if err != nil || len(snaps) != 3 {
		t.Fatalf("snapshots of s1: got %d, %v; want the member's 3 cards", len(snaps), err)
	}
	var allowed loyalty.Points
	var redeems []loyalty.Op
	for _, s := range snaps {
		if s.Member != "max" || s.Balance != 100 {
			t.Fatalf("snapshot of card %s: got %+v, want max's card with 100 points", s.Card.Short(), s)
		}
		allowed += s.Allowance.Points
		if s.Allowance.Points > 0 {
			redeems = append(redeems, tl.Redeem(s.Card, s.Allowance.Points, true))
		}
	}
	if allowed > 100 {
		t.Errorf("the allowances of one member's cards at one store add up to %d points, but the member has 100", allowed)
	}
	a := tl.Send(t, l, redeems...)
	for i, r := range a.Results {
		if r.Flags&cloud.FlagOverspend != 0 {
			t.Errorf("offline redeem %d, within its card's allowance, overspent", i)
		}
	}
	if s := snap(t, l, cards[0]); s.Debt != 0 {
		t.Errorf("after offline redeems each within its card's allowance the member owes %d", s.Debt)
	}
}

func testCardless(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	e := tl.Earn(loyalty.CardHash{}, 1000, 10)
	a := tl.Send(t, l, e, tl.Reverse(e))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 0)
	if a.Results[0].Flags&cloud.FlagNoCard == 0 {
		t.Errorf("earn without a card: flags %b, want FlagNoCard", a.Results[0].Flags)
	}
	wantResult(t, a.Results[1], cloud.StatusApplied, "", 0)
	if rep, err := l.Check(ctx); err != nil || rep.Liability != 0 {
		t.Errorf("check: got liability %d, %v; want 0", rep.Liability, err)
	}
}

func testAdjust(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	up, down := tl.Adjust(c, 50), tl.Adjust(c, -80)
	tl.Send(t, l, up, down)
	wantBalance(t, l, c, 0, 30)
	byMember := tl.Adjust(loyalty.CardHash{}, 5)
	byMember.Member = "nobody"
	a := tl.Send(t, l, byMember, tl.Reverse(down))
	wantResult(t, a.Results[0], cloud.StatusRejected, cloud.ReasonNoOwner, 0)
	wantResult(t, a.Results[1], cloud.StatusApplied, "", 80)
	wantBalance(t, l, c, 50, 0)
}

func testTamper(t *testing.T, l cloud.Ledger) {
	db, ok := l.(interface{ DB() *sql.DB })
	if !ok {
		t.Skip("ledger gives no raw database handle to tamper with")
	}
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	tl.Send(t, l, tl.Earn(c, 1000, 10))
	owner := cloud.CardOwner(c)
	tamper := func(table string, delta int) {
		t.Helper()
		key := string(owner)
		byOwner := `owner_no = (SELECT no FROM owners WHERE id = ?)`
		var q string
		var args []any
		switch table {
		case "balances":
			q, args = `UPDATE owners SET avail = avail + ? WHERE id = ?`, []any{delta, key}
		case "lots":
			q, args = `UPDATE lots SET remaining = remaining + ? WHERE `+byOwner, []any{delta, key}
		case "lots apart": // to the owner's first lot from the others: the sum stays
			q = `UPDATE lots SET remaining = remaining + CASE WHEN id = (SELECT id FROM lots WHERE ` + byOwner + ` ORDER BY id LIMIT 1) THEN CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END WHERE ` + byOwner
			args = []any{key, delta, -delta, key}
		}
		if _, err := db.DB().ExecContext(ctx, q, args...); err != nil {
			for n := 1; strings.Contains(q, "?"); n++ {
				q = strings.Replace(q, "?", "$"+strconv.Itoa(n), 1)
			}
			if _, err := db.DB().ExecContext(ctx, q, args...); err != nil {
				t.Fatalf("tamper with %s: %v", table, err)
			}
		}
	}
	// The balance check of Apply compares what the database holds after
	// the batch's writes: a balance or a lot changed behind its back halts
	// the next batch that touches the owner, until it is repaired.
	next := tl.Seal(tl.Earn(c, 1000, 10))
	for _, table := range []string{"balances", "lots"} {
		tamper(table, 5)
		if _, err := l.Check(ctx); !errors.Is(err, cloud.ErrCheckFailed) {
			t.Errorf("check after tampering with %s: got %v, want ErrCheckFailed", table, err)
		}
		if _, err := l.Apply(ctx, next); !errors.Is(err, cloud.ErrInvariant) {
			t.Errorf("apply on tampered %s: got %v, want ErrInvariant", table, err)
		}
		if wm, _, _ := l.Watermark(ctx, "t1", 1); wm != 1 {
			t.Errorf("watermark after a halted apply: got %d, want 1", wm)
		}
		tamper(table, -5)
		wantBalance(t, l, c, 10, 0)
	}
	if _, err := l.Apply(ctx, next); err != nil {
		t.Errorf("apply after the repair: %v", err)
	}
	wantBalance(t, l, c, 20, 0)

	// Two lots of 10 made 25 and -5 still sum to the balance: the check
	// halts on the negative lot.
	next = tl.Seal(tl.Earn(c, 1000, 10))
	tamper("lots apart", 15)
	if _, err := l.Apply(ctx, next); !errors.Is(err, cloud.ErrInvariant) || !strings.Contains(err.Error(), "negative") {
		t.Errorf("apply with a lot below zero: got %v, want ErrInvariant for the negative lot", err)
	}
	tamper("lots apart", -15)
	if _, err := l.Apply(ctx, next); err != nil {
		t.Errorf("apply after the repair: %v", err)
	}
	wantBalance(t, l, c, 30, 0)
}

func testClaim(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	e := tl.Earn(loyalty.CardHash{}, 1000, 15) // the terminal's figure is off by 5
	withCard := tl.Earn(Card(2), 1000, 10)
	e2 := tl.Earn(loyalty.CardHash{}, 2000, 20)
	// Made without a card but for a member (the customer gave a phone
	// number): the points are already the member's.
	forMember := tl.Earn(loyalty.CardHash{}, 1000, 10)
	forMember.Member = "gus"
	tl.Send(t, l, e, withCard, e2, tl.Reverse(e2), tl.Enroll(Card(1), "fay"), tl.Enroll(Card(4), "gus"), forMember)
	got, err := l.Claim(ctx, e.ID, Card(1), "s1", tl.Now)
	if err != nil || got.Points != 10 || got.Flags&cloud.FlagReevaluated == 0 || got.Snapshot.Balance != 10 || got.Snapshot.Member != "fay" {
		t.Fatalf("claim: got %+v, %v; want 10 points (re-evaluated) on fay's card", got, err)
	}
	if _, err := l.Claim(ctx, e.ID, Card(3), "s1", tl.Now); !errors.Is(err, cloud.ErrAlreadyClaimed) {
		t.Errorf("second claim: got %v, want ErrAlreadyClaimed", err)
	}
	for name, id := range map[string]loyalty.OpID{"earn with a card": withCard.ID, "earn for a member": forMember.ID, "reversed purchase": e2.ID, "unknown op": {7}} {
		if _, err := l.Claim(ctx, id, Card(3), "s1", tl.Now); !errors.Is(err, cloud.ErrNotClaimable) {
			t.Errorf("claim of %s: got %v, want ErrNotClaimable", name, err)
		}
	}
	wantBalance(t, l, Card(3), 0, 0)
	wantBalance(t, l, Card(4), 10, 0)
	a := tl.Send(t, l, tl.Reverse(e))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", -10)
	wantBalance(t, l, Card(1), 0, 0)
	if rep, err := l.Check(ctx); err != nil || rep.Earned != 10+10+10 {
		t.Errorf("check: got earned %d, %v; want 30: the card earn, the member's and the claim", rep.Earned, err)
	}
}

// testLinkMovesClosedLots: a link moves a held card's lots to the member,
// the spent ones too, so that reversing a redeem made before the link
// returns the points to the member through the lot they came from.
func testLinkMovesClosedLots(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	redeem := tl.Redeem(c, 10, false)
	tl.Send(t, l, tl.Earn(c, 1000, 10), redeem)
	wantBalance(t, l, c, 0, 0)
	tl.Send(t, l, tl.Enroll(c, "gil"))
	a := tl.Send(t, l, tl.Reverse(redeem))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 10)
	if s := snap(t, l, c); s.Member != "gil" || s.Balance != 10 {
		t.Errorf("after reversing the redeem: got member %q balance %d, want gil with 10", s.Member, s.Balance)
	}
}

// testLinkSettlesMovedPointsAgainstDebt defends invariant 3 and the
// offline allowance: points that reach a member in debt repay the debt
// first, whether they come with an earn after the link or
// with the link of a card that earned them before. Two members each owe
// 50 from an offline overspend and each link a card that earns 100: for
// ann the card earns before its link, for bob after it. The same ops in
// another receive order (across terminals the cloud's receive order is
// arbitrary) must leave the same account: balance 50, no debt.
func testLinkSettlesMovedPointsAgainstDebt(t *testing.T, l cloud.Ledger) {
	t1, t2 := NewTill(t, l, "t1", "s1"), NewTill(t, l, "t2", "s1")
	ann, bob := Card(1), Card(2)
	annNew, bobNew := Card(3), Card(4)
	t1.Send(t, l, t1.Enroll(ann, "ann"), t1.Redeem(ann, 50, true), t1.Enroll(bob, "bob"), t1.Redeem(bob, 50, true))
	wantBalance(t, l, ann, 0, 50)
	wantBalance(t, l, bob, 0, 50)

	// ann: the new card earns at till 2 before till 1's link arrives.
	t2.Send(t, l, t2.Earn(annNew, 10000, 100))
	t1.Send(t, l, t1.Enroll(annNew, "ann"))
	// bob: the link arrives first, then the earn.
	t1.Send(t, l, t1.Enroll(bobNew, "bob"))
	t2.Send(t, l, t2.Earn(bobNew, 10000, 100))

	sa, sb := snap(t, l, ann), snap(t, l, bob)
	if sa.Balance != sb.Balance || sa.Debt != sb.Debt {
		t.Errorf("the same ops in two receive orders: ann (earn, then link) has balance %d debt %d, bob (link, then earn) balance %d debt %d; want the same account",
			sa.Balance, sa.Debt, sb.Balance, sb.Debt)
	}
	wantBalance(t, l, ann, 50, 0)
	wantBalance(t, l, bob, 50, 0)
	if sa.Debt > 0 && sa.Balance > 0 {
		t.Errorf("ann holds %d points and owes %d at once: her allowance is %+v, and her points can lapse while the store's shortfall stays open",
			sa.Balance, sa.Debt, sa.Allowance)
	}

	// The other way round: the debt moves with a card to a member with points.
	cy, held := Card(5), Card(6)
	t1.Send(t, l, t1.Enroll(cy, "cy"), t1.Earn(cy, 10000, 100))
	t2.Send(t, l, t2.Redeem(held, 30, true)) // a held card overspends offline
	wantBalance(t, l, held, 0, 30)
	t1.Send(t, l, t1.Enroll(held, "cy"))
	wantBalance(t, l, cy, 70, 0)

	rep, err := l.Check(ctx)
	if err != nil {
		t.Fatalf("check: %v (%v)", err, rep.Problems)
	}
	if rep.Settled != 50+30 || rep.Adjusted != 0 {
		t.Errorf("check: settled %d, adjusted %d; want ann's link settling 50 and cy's 30 (bob's earn repaid his debt itself), nothing adjusted", rep.Settled, rep.Adjusted)
	}
}

// testAllowanceLeavesOutLapsingPointsBehindOverdueOnes defends invariant
// 4 when point expiry has fallen behind (a missed run, a ledger that only
// starts to expire points): a member earned 10 points on each of four
// days; a year on, the first three days' points are overdue and the
// fourth day's lapse within the hour. The snapshot lists only a few
// expiry dates, but every point of the balance lapses within the
// allowance: it is zero, and a redeem of what it allows would overspend.
func testAllowanceLeavesOutLapsingPointsBehindOverdueOnes(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	tl.Send(t, l, tl.Enroll(c, "val"))
	var last time.Time // when the fourth day's lot lapses
	for range 4 {
		e := tl.Earn(c, 1000, 10)
		tl.Send(t, l, e)
		last = e.WallTime.AddDate(1, 0, 0)
		tl.Now = tl.Now.Add(24 * time.Hour)
	}
	s, err := l.Snapshot(ctx, c, "s1", last.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if s.Balance != 40 || s.Allowance == nil || s.Allowance.Points != 0 {
		t.Errorf("snapshot an hour before the last of 40 points lapses: balance %d, allowance %+v (expiring listed: %+v); want 40 and none",
			s.Balance, s.Allowance, s.Expiring)
	}
}
