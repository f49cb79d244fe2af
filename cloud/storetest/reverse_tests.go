package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

func testReverseRedeem(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	tl.Send(t, l, tl.Earn(c, 1000, 10))
	expA := tl.Now.AddDate(1, 0, 0)
	tl.Now = tl.Now.Add(30 * 24 * time.Hour)
	tl.Send(t, l, tl.Earn(c, 2000, 20))
	red := tl.Redeem(c, 45, true) // takes A 10, B 20, 15 owed
	tl.Send(t, l, red)
	wantBalance(t, l, c, 0, 15)
	tl.Send(t, l, tl.Earn(c, 500, 5)) // repays 5 of the debt
	wantBalance(t, l, c, 0, 10)
	a := tl.Send(t, l, tl.Reverse(red))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 45)
	// 30 back to A and B, the 15 shortfall cancels the 10 still owed and 5 is credited.
	wantBalance(t, l, c, 35, 0)
	res, err := l.Expire(ctx, expA)
	if err != nil || res.Points != 10 {
		t.Errorf("expire at A's date after the reversal: got %+v, %v; want A's 10 points back in A and lapsing", res, err)
	}
	wantBalance(t, l, c, 25, 0)
}

// testReversalsCommute defends conservation across reversals: earn 10,
// redeem them, then reverse both. Whichever reversal comes first, both ops
// are undone, so the member ends with nothing and owes nothing, and
// nothing lapses later. Reversing the earn first leaves a debt of 10,
// which the redeem's points, coming back, must repay rather than refill
// the lot (where they used to lapse, leaving the debt).
func testReversalsCommute(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c, d := Card(1), Card(2)
	lapse := tl.Now.AddDate(1, 0, 0)
	e1, r1 := tl.Earn(d, 1000, 10), tl.Redeem(d, 10, false)
	tl.Send(t, l, tl.Enroll(d, "ref"), e1, r1)
	tl.Send(t, l, tl.Reverse(r1))
	tl.Send(t, l, tl.Reverse(e1))
	wantBalance(t, l, d, 0, 0)
	e2, r2 := tl.Earn(c, 1000, 10), tl.Redeem(c, 10, false)
	tl.Send(t, l, tl.Enroll(c, "ann"), e2, r2)
	tl.Send(t, l, tl.Reverse(e2))
	wantBalance(t, l, c, 0, 10)
	tl.Send(t, l, tl.Reverse(r2))
	wantBalance(t, l, c, 0, 0)
	if res, err := l.Expire(ctx, lapse.Add(time.Hour)); err != nil || res.Points != 0 {
		t.Errorf("expire after both ops were undone: got %+v, %v; want nothing lapsed", res, err)
	}
	for _, card := range []loyalty.CardHash{c, d} {
		wantBalance(t, l, card, 0, 0)
	}
}

func testReverseEarn(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	e1 := tl.Earn(c, 1000, 10)
	tl.Send(t, l, e1, tl.Earn(c, 2000, 20), tl.Redeem(c, 25, false))
	a := tl.Send(t, l, tl.Reverse(e1))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", -10)
	wantBalance(t, l, c, 0, 5)
}

func testReverseRejections(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	e := tl.Earn(c, 1000, 10)
	en := tl.Enroll(c, "bob")
	r1 := tl.Reverse(e)
	a := tl.Send(t, l, e, en, r1, tl.Reverse(e), tl.Reverse(en), tl.Reverse(r1), tl.Reverse(loyalty.Op{ID: loyalty.OpID{9}}))
	wantResult(t, a.Results[2], cloud.StatusApplied, "", -10)
	wantResult(t, a.Results[3], cloud.StatusRejected, cloud.ReasonAlreadyReversed, 0)
	wantResult(t, a.Results[4], cloud.StatusRejected, cloud.ReasonNotReversible, 0)
	wantResult(t, a.Results[5], cloud.StatusRejected, cloud.ReasonNotReversible, 0)
	wantResult(t, a.Results[6], cloud.StatusRejected, cloud.ReasonUnknownTarget, 0)
	a = tl.Send(t, l, tl.Reverse(e))
	wantResult(t, a.Results[0], cloud.StatusRejected, cloud.ReasonAlreadyReversed, 0)
	wantBalance(t, l, c, 0, 0)
	// A rejected op changes nothing: a reversal of an unknown op, naming
	// a card the ledger never saw, does not record that card at the store.
	stranger := tl.Reverse(loyalty.Op{ID: loyalty.OpID{8}, Card: Card(7)})
	a = tl.Send(t, l, stranger)
	wantResult(t, a.Results[0], cloud.StatusRejected, cloud.ReasonUnknownTarget, 0)
	snaps, err := l.Snapshots(ctx, "s1", loyalty.CardHash{}, 100, tl.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if s.Card == Card(7) {
			t.Errorf("the card of a rejected reversal is listed among the store's cards: %+v", s)
		}
	}
}

// testReverseAdjustReturnsPointsToTheirLots: reversing a negative adjust
// puts its points back into the lots it took them from, as reversing a
// redeem does, so they lapse with those lots. They used to come back as a
// fresh lot with a year to live.
func testReverseAdjustReturnsPointsToTheirLots(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	tl.Send(t, l, tl.Enroll(c, "kim"), tl.Earn(c, 1000, 10)) // one lot of 10, lapsing in a year
	lapse := tl.Now.AddDate(1, 0, 0)
	red, adj := tl.Redeem(c, 4, false), tl.Adjust(c, -6)
	tl.Send(t, l, red, adj) // the lot is used up
	tl.Now = lapse.Add(time.Hour)
	tl.Send(t, l, tl.Reverse(red), tl.Reverse(adj))
	res, err := l.Expire(ctx, tl.Now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Points != 10 {
		t.Errorf("expired %d points, want the lot's 10: the redeem's 4 and the adjust's 6 went back to it", res.Points)
	}
	wantBalance(t, l, c, 0, 0)
}

// testReverseEarnAfterItsPointsLapsed: points that lapsed have left the
// balance once; reversing the earn they came from must not take them
// again (as a debt). What was spent of it is still owed.
func testReverseEarnAfterItsPointsLapsed(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c, d := Card(1), Card(2)
	lapsing, spent := tl.Earn(c, 1000, 10), tl.Earn(d, 1000, 10)
	tl.Send(t, l, tl.Enroll(c, "jo"), lapsing, tl.Enroll(d, "di"), spent, tl.Redeem(d, 4, false))
	lapse := tl.Now.AddDate(1, 0, 0)
	if res, err := l.Expire(ctx, lapse); err != nil || res.Points != 16 {
		t.Fatalf("expire: %+v, %v; want 10 + 6 points lapsed", res, err)
	}
	tl.Now = lapse.Add(time.Hour)
	tl.Send(t, l, tl.Reverse(lapsing), tl.Reverse(spent))
	wantBalance(t, l, c, 0, 0)
	wantBalance(t, l, d, 0, 4) // the 4 redeemed of a returned purchase
	rep, err := l.Check(ctx)
	if err != nil {
		t.Fatalf("check: %v (%v)", err, rep.Problems)
	}
	if rep.Liability != 0 || rep.Debt != 4 {
		t.Errorf("check: liability %d, debt %d; want 0 and 4", rep.Liability, rep.Debt)
	}
}

// testReverseEarnReceivedBeforeExpiryRun: earn 10, redeem 4, and the
// other 6 lapse. Batches received just before the expiry run's time (they
// waited for the writer, or another cloud's clock runs behind) reverse
// the redeem, which refills the lapsed lot, then the earn: in one batch,
// or in two. The 6 that lapsed left the balance once; the member owes
// nothing.
func testReverseEarnReceivedBeforeExpiryRun(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c, d := Card(1), Card(2)
	ec, rc, ed, rd := tl.Earn(c, 1000, 10), tl.Redeem(c, 4, false), tl.Earn(d, 1000, 10), tl.Redeem(d, 4, false)
	tl.Send(t, l, tl.Enroll(c, "ivy"), ec, rc, tl.Enroll(d, "ike"), ed, rd)
	lapse := tl.Now.AddDate(1, 0, 0)
	if res, err := l.Expire(ctx, lapse); err != nil || res.Points != 12 {
		t.Fatalf("expire: %+v, %v; want 6 + 6 lapsed", res, err)
	}
	tl.Now = lapse.Add(-time.Minute)
	tl.Send(t, l, tl.Reverse(rc), tl.Reverse(ec))
	tl.Send(t, l, tl.Reverse(rd))
	tl.Send(t, l, tl.Reverse(ed))
	wantBalance(t, l, c, 0, 0)
	wantBalance(t, l, d, 0, 0)
}

// testReverseHeldOverspendAfterLink: a held card overspends (its lots
// used up, 20 owed), is linked to a member, who settles the 20 from her
// 50, and the redeem is reversed: the points go back to the moved lots,
// and the shortfall back to the member, whose settlement paid it.
func testReverseHeldOverspendAfterLink(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	held, mine := Card(1), Card(2)
	r := tl.Redeem(held, 30, true)
	tl.Send(t, l, tl.Earn(held, 1000, 10), r, tl.Enroll(mine, "mo"), tl.Earn(mine, 5000, 50))
	tl.Send(t, l, tl.Enroll(held, "mo"))
	wantBalance(t, l, mine, 30, 0) // the held card's 10 were spent; its 20 of debt moved and was settled
	tl.Send(t, l, tl.Reverse(r))
	wantBalance(t, l, mine, 60, 0)
}

// testReverseEarnSettledByLink: a link settles the points and debt it
// brings together from the soonest-expiring lots; reversing the earn whose
// lot it took brings the debt back, before or after the rest of the lot
// lapsed, and revives no lapsed point. ann and bob each owe 50 and link a
// card that earned 100; cy earned 100 and links a held card owing 30.
// ann's and cy's earns are reversed before expiry, bob's after the other
// 50 of his lot lapsed: each ends owing what the link settled.
func testReverseEarnSettledByLink(t *testing.T, l cloud.Ledger) {
	t1, t2 := NewTill(t, l, "t1", "s1"), NewTill(t, l, "t2", "s1")
	ann, bob, cy := Card(1), Card(2), Card(3)
	annNew, bobNew, held := Card(4), Card(5), Card(6)
	cyEarn := t1.Earn(cy, 10000, 100)
	t1.Send(t, l, t1.Enroll(ann, "ann"), t1.Redeem(ann, 50, true), t1.Enroll(bob, "bob"), t1.Redeem(bob, 50, true),
		t1.Redeem(held, 30, true), t1.Enroll(cy, "cy"), cyEarn)
	annEarn, bobEarn := t2.Earn(annNew, 10000, 100), t2.Earn(bobNew, 10000, 100)
	t2.Send(t, l, annEarn, bobEarn)
	t1.Now = t2.Now
	t1.Send(t, l, t1.Enroll(annNew, "ann"), t1.Enroll(bobNew, "bob"), t1.Enroll(held, "cy"))
	wantBalance(t, l, ann, 50, 0)
	wantBalance(t, l, bob, 50, 0)
	wantBalance(t, l, cy, 70, 0)

	t1.Send(t, l, t1.Reverse(annEarn), t1.Reverse(cyEarn))
	wantBalance(t, l, ann, 0, 50)
	wantBalance(t, l, cy, 0, 30)
	lapse := t1.Now.AddDate(1, 0, 0)
	if res, err := l.Expire(ctx, lapse); err != nil || res.Points != 50 {
		t.Fatalf("expire: %+v, %v; want the 50 of bob's lot the link left", res, err)
	}
	wantBalance(t, l, bob, 0, 0)
	t1.Now = lapse.Add(time.Hour)
	t1.Send(t, l, t1.Reverse(bobEarn))
	if res, err := l.Expire(ctx, lapse.AddDate(2, 0, 0)); err != nil || res.Points != 0 {
		t.Errorf("expire after the reversals: %+v, %v; want nothing left to lapse", res, err)
	}
	for _, c := range []struct {
		card loyalty.CardHash
		debt loyalty.Points
	}{{ann, 50}, {bob, 50}, {cy, 30}} {
		wantBalance(t, l, c.card, 0, c.debt)
	}
	rep, err := l.Check(ctx)
	if err != nil {
		t.Fatalf("check: %v (%v)", err, rep.Problems)
	}
	if rep.Liability != 0 || rep.Debt != 130 || rep.Settled != 130 {
		t.Errorf("check: liability %d, debt %d, settled %d; want 0, 130 and 130", rep.Liability, rep.Debt, rep.Settled)
	}
}

// testExpiryDuringReversals: while an expiry run lapses what forty
// cards have left of an earn, batches received just before the run's time
// reverse their redeems (refilling the lots it lapses) and earn again.
// Each point lapses once: after a last run, every card has the new point
// and owes nothing.
func testExpiryDuringReversals(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	var ops, reds []loyalty.Op
	for i := range 40 {
		ops = append(ops, tl.Earn(Card(i), 1000, 10))
	}
	tl.Send(t, l, ops...)
	lapse := tl.Now.AddDate(1, 0, 0)
	for i := range 40 {
		reds = append(reds, tl.Redeem(Card(i), 4, false))
	}
	tl.Send(t, l, reds...)
	tl.Now = lapse.Add(-time.Second)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := l.Expire(ctx, lapse); err != nil {
			t.Errorf("expire: %v", err)
		}
	}()
	for i := range 40 {
		tl.Send(t, l, tl.Reverse(reds[i]), tl.Earn(Card(i), 100, 1))
	}
	wg.Wait()
	if _, err := l.Expire(ctx, lapse.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		s, err := l.Snapshot(ctx, Card(i), "s1", lapse.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if s.Balance != 1 || s.Debt != 0 {
			t.Errorf("card %d: balance %d debt %d, want 1 0", i, s.Balance, s.Debt)
		}
	}
}

// testReverseResultIsWhatTheLedgerChanged: an op's result Points is the
// change the ledger made to the owner's available balance and debt
// together (cloud.OpResult). A reverse of an earn whose points lapsed
// takes back only what had not lapsed (the lapsed points go back from the
// expired account), so its result says that much, not the earn's points:
// 0 when all 100 lapsed, -40 when 40 were spent before the other 60 lapsed.
func testReverseResultIsWhatTheLedgerChanged(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	c, d := Card(1), Card(2)
	lapsed, spent := tl.Earn(c, 10000, 100), tl.Earn(d, 10000, 100)
	tl.Send(t, l, tl.Enroll(c, "lu"), lapsed, tl.Enroll(d, "li"), spent, tl.Redeem(d, 40, false))
	lapse := tl.Now.AddDate(1, 0, 0)
	if res, err := l.Expire(ctx, lapse); err != nil || res.Points != 160 {
		t.Fatalf("expire: %+v, %v; want 100 + 60 points lapsed", res, err)
	}
	tl.Now = lapse.Add(time.Hour)
	for _, tc := range []struct {
		card loyalty.CardHash
		earn loyalty.Op
		want loyalty.Points
	}{{c, lapsed, 0}, {d, spent, -40}} {
		before := snap(t, l, tc.card)
		a := tl.Send(t, l, tl.Reverse(tc.earn))
		after := snap(t, l, tc.card)
		changed := (after.Balance - after.Debt) - (before.Balance - before.Debt)
		if got := a.Results[0]; got.Status != cloud.StatusApplied || got.Points != changed || changed != tc.want {
			t.Errorf("reverse of an earn of 100: result says %s %d points, the balance less debt moved by %d (from %d/%d to %d/%d); want %d",
				got.Status, got.Points, changed, before.Balance, before.Debt, after.Balance, after.Debt, tc.want)
		}
	}
	if rep, err := l.Check(ctx); err != nil {
		t.Errorf("check: %v (%v)", err, rep.Problems)
	}
}

// testReverseOfAFlaggedRedeemGivesBackWhatItTook: a redeem whose points
// differ from its reward's cost is posted as the till recorded it, flagged
// reward_cost; its reversal gives back exactly what it took, to the lots
// it took it from, and nothing to the store's shortfall. A coffee (500
// points under rules 2) recorded for 600 and one recorded for 1, both
// returned half a year later: the balance is back, and at the lot's date
// all of it lapses.
func testReverseOfAFlaggedRedeemGivesBackWhatItTook(t *testing.T, l cloud.Ledger) {
	r := TestRules(2)
	r.Rewards = []loyalty.Reward{{ID: "coffee", Name: "Coffee", Cost: 500}}
	if err := l.PublishRules(ctx, r, Start()); err != nil {
		t.Fatal(err)
	}
	tl := NewTill(t, l, "t1", "s1")
	c := Card(1)
	tl.Send(t, l, tl.Enroll(c, "sam"), tl.Earn(c, 200000, 2000)) // one lot, lapsing in a year
	lapse := tl.Now.AddDate(1, 0, 0)
	var redeems []loyalty.Op
	for _, pts := range []loyalty.Points{600, 1} {
		op := tl.Redeem(c, pts, false)
		op.Reward, op.RulesVersion = "coffee", 2
		redeems = append(redeems, op)
	}
	a := tl.Send(t, l, redeems...)
	for i, res := range a.Results {
		if res.Points != redeems[i].Points || res.Flags != cloud.FlagRewardCost {
			t.Errorf("redeem of a coffee for %d: got %d points, flags %v; want the till's figure, flagged reward_cost", -redeems[i].Points, res.Points, res.Flags.Names())
		}
	}
	wantBalance(t, l, c, 2000-601, 0)
	tl.Now = tl.Now.AddDate(0, 6, 0)
	a = tl.Send(t, l, tl.Reverse(redeems[0]), tl.Reverse(redeems[1]))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 600)
	wantResult(t, a.Results[1], cloud.StatusApplied, "", 1)
	wantBalance(t, l, c, 2000, 0)
	if res, err := l.Expire(ctx, lapse.Add(time.Hour)); err != nil || res.Points != 2000 {
		t.Errorf("expire at the lot's date: %+v, %v; want all 2000 points, the returned ones back in their lot", res, err)
	}
	if rep, err := l.Check(ctx); err != nil {
		t.Errorf("check: %v (%v)", err, rep.Problems)
	}
}
