package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// model is an independent account of a card's points, written from the
// issue's rules rather than from the ledger's code.
type model struct {
	avail, debt, qualifying int64
}

func (m *model) credit(p int64) {
	repay := min(p, m.debt)
	m.debt -= repay
	m.avail += p - repay
}

// debit returns what came out of the balance; the rest is owed.
func (m *model) debit(p int64) int64 {
	took := min(p, m.avail)
	m.avail -= took
	m.debt += p - took
	return took
}

// earnFor is what rules version 1 gives a basket of cents at a member's
// qualifying points: 1 point per 100 cents, Silver (100) x1.5, Gold (1000) x2.
func earnFor(cents, qualifying int64) int64 {
	base := cents / 100
	switch {
	case qualifying >= 1000:
		return base * 2
	case qualifying >= 100:
		return base + base*50/100
	}
	return base
}

type sent struct {
	op     loyalty.Op
	posted int64 // what the model expects the ledger to have posted
	took   int64 // for a redeem, what came out of the balance
}

func testModel(t *testing.T, l cloud.Ledger) {
	rnd := rand.New(rand.NewPCG(3, 4))
	tills := []*Till{NewTill(t, l, "t1", "s1"), NewTill(t, l, "t2", "s1"), NewTill(t, l, "t3", "s2")}
	const cards = 8
	models := make([]model, cards)
	var done []*sent
	reversed := map[loyalty.OpID]bool{}
	n := 400
	if testing.Short() || raceEnabled {
		n = 120
	}
	for sentOps := 0; sentOps < n; {
		tl := tills[rnd.IntN(len(tills))]
		size := 1 + rnd.IntN(15)
		var batch []loyalty.Op
		for i := 0; i < size; i++ {
			ci := rnd.IntN(cards)
			c, m := Card(ci), &models[ci]
			switch k := rnd.IntN(10); {
			case k < 5: // earn; the terminal sends the base points only, the cloud re-evaluates
				cents := int64(100 + rnd.IntN(5000))
				p := earnFor(cents, m.qualifying)
				m.credit(p)
				m.qualifying += p
				op := tl.Earn(c, cents, loyalty.Points(cents/100))
				done = append(done, &sent{op: op, posted: p})
				batch = append(batch, op)
			case k < 8: // redeem, online or offline
				p := int64(1 + rnd.IntN(60))
				took := m.debit(p)
				op := tl.Redeem(c, loyalty.Points(p), rnd.IntN(2) == 0)
				done = append(done, &sent{op: op, posted: -p, took: took})
				batch = append(batch, op)
			default: // reverse an earlier earn or redeem of any till
				if len(done) == 0 {
					continue
				}
				target := done[rnd.IntN(len(done))]
				if reversed[target.op.ID] || target.op.Kind == loyalty.OpReverse {
					continue
				}
				reversed[target.op.ID] = true
				tm := &models[cardIndex(target.op.Card, cards)]
				if target.op.Kind == loyalty.OpEarn {
					tm.debit(target.posted)
					tm.qualifying = max(0, tm.qualifying-target.posted)
				} else {
					tm.avail += target.took
					tm.credit(-target.posted - target.took)
				}
				op := tl.Reverse(target.op)
				done = append(done, &sent{op: op})
				batch = append(batch, op)
			}
		}
		if len(batch) == 0 {
			continue
		}
		sentOps += len(batch)
		a := tl.Send(t, l, batch...)
		for _, r := range a.Results {
			if r.Status != cloud.StatusApplied {
				t.Fatalf("op %d of %s: got %s %q, want applied", r.Seq, tl.ID, r.Status, r.Reason)
			}
		}
		// A duplicate delivery changes nothing.
		if rnd.IntN(4) == 0 {
			if _, err := l.Apply(ctx, cloud.Batch{Terminal: tl.ID, Epoch: tl.Epoch, FirstSeq: a.Watermark - uint64(len(batch)) + 1,
				LastSeq: a.Watermark, Hash: tl.Prev, PrevHash: nil, Ops: batch, ReceivedAt: tl.Now}); err != nil {
				t.Fatalf("duplicate delivery: %v", err)
			}
		}
	}
	for i := range models {
		s := snap(t, l, Card(i))
		if int64(s.Balance) != models[i].avail || int64(s.Debt) != models[i].debt {
			t.Errorf("card %d: got balance %d debt %d, model says %d and %d", i, s.Balance, s.Debt, models[i].avail, models[i].debt)
		}
	}
}

func cardIndex(c loyalty.CardHash, n int) int {
	for i := 0; i < n; i++ {
		if Card(i) == c {
			return i
		}
	}
	panic(fmt.Sprintf("card %s is not a test card", c.Short()))
}

func testConcurrent(t *testing.T, l cloud.Ledger) {
	const tills, perBatch, cards = 4, 10, 5
	batches := 8
	if testing.Short() || raceEnabled {
		batches = 4
	}
	ts := make([]*Till, tills)
	for i := range ts {
		ts[i] = NewTill(t, l, fmt.Sprintf("t%d", i), "s1")
	}
	var mu sync.Mutex
	net := make([]int64, cards) // earned minus redeemed: order does not change it
	var wg sync.WaitGroup
	errs := make(chan error, tills)
	for i, tl := range ts {
		wg.Add(1)
		go func(i int, tl *Till) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), 9))
			for b := 0; b < batches; b++ {
				var ops []loyalty.Op
				var delta [cards]int64
				if i == 0 && b == 0 {
					// Link every card to a member while the other tills keep
					// earning on it: no point may be stranded on the card.
					for c := 0; c < cards; c++ {
						ops = append(ops, tl.Enroll(Card(c), loyalty.MemberID(fmt.Sprintf("member-%d", c))))
					}
				}
				for j := 0; j < perBatch; j++ {
					c := rnd.IntN(cards)
					if rnd.IntN(3) == 0 {
						ops = append(ops, tl.Redeem(Card(c), 2, true))
						delta[c] -= 2
					} else {
						ops = append(ops, tl.Earn(Card(c), 100, 1)) // stays below Silver: order cannot change a figure
						delta[c]++
					}
				}
				if _, err := l.Apply(ctx, tl.Seal(ops...)); err != nil {
					errs <- fmt.Errorf("till %s batch %d: %w", tl.ID, b, err)
					return
				}
				mu.Lock()
				for c := range delta {
					net[c] += delta[c]
				}
				mu.Unlock()
			}
		}(i, tl)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for c := 0; c < cards; c++ {
		s := snap(t, l, Card(c))
		if got := int64(s.Balance - s.Debt); got != net[c] {
			t.Errorf("card %d: got balance %d - debt %d = %d, want %d", c, s.Balance, s.Debt, got, net[c])
		}
		if s.Balance > 0 && s.Debt > 0 {
			t.Errorf("card %d: balance %d and debt %d at once; earns must repay debt first", c, s.Balance, s.Debt)
		}
	}
	for _, tl := range ts {
		want := uint64(batches * perBatch)
		if tl == ts[0] {
			want += cards
		}
		if wm, _, _ := l.Watermark(ctx, tl.ID, 1); wm != want {
			t.Errorf("till %s: watermark %d, want %d", tl.ID, wm, want)
		}
	}
	for c := 0; c < cards; c++ {
		if s := snap(t, l, Card(c)); s.Member != loyalty.MemberID(fmt.Sprintf("member-%d", c)) {
			t.Errorf("card %d: member %q, want member-%d", c, s.Member, c)
		}
	}
}

// testLinkWhileEarning races, round after round, one terminal linking cards
// to members against another earning on the same cards. Each card is known
// and holds nothing when both start (an earn, reversed), so the only row
// the two transactions share is the card owner's: whichever commits second
// must see the other's work (PostgreSQL: a serialization failure, retried;
// SQLite: one writer at a time), and no earn may stay on the card after
// the link. Every round's balances are checked against the earns.
func testLinkWhileEarning(t *testing.T, l cloud.Ledger) {
	const cards = 10
	rounds := 8
	if testing.Short() || raceEnabled {
		rounds = 3
	}
	setup, linker, earner := NewTill(t, l, "setup", "s1"), NewTill(t, l, "linker", "s1"), NewTill(t, l, "earner", "s1")
	for r := 0; r < rounds; r++ {
		var known, links, earns []loyalty.Op
		for i := 0; i < cards; i++ {
			c := Card(r*cards + i)
			e := setup.Earn(c, 500, 5)
			known = append(known, e, setup.Reverse(e))
			links = append(links, linker.Enroll(c, loyalty.MemberID(fmt.Sprintf("member-%d-%d", r, i))))
			earns = append(earns, earner.Earn(c, 300+int64(i)*100, loyalty.Points(3+i)))
		}
		setup.Send(t, l, known...)
		link, earn := linker.Seal(links...), earner.Seal(earns...)
		start := make(chan struct{})
		errs := make(chan error, 2)
		for _, b := range []cloud.Batch{link, earn} {
			go func() {
				<-start
				_, err := l.Apply(ctx, b)
				errs <- err
			}()
		}
		close(start)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", r, err)
			}
		}
		for i := 0; i < cards; i++ {
			s := snap(t, l, Card(r*cards+i))
			if want := loyalty.MemberID(fmt.Sprintf("member-%d-%d", r, i)); s.Member != want || s.Balance != loyalty.Points(3+i) {
				t.Errorf("round %d card %d: got member %q balance %d, want %q with the %d points earned while it was linked",
					r, i, s.Member, s.Balance, want, 3+i)
			}
		}
	}
}

// testConcurrentLinksOfOneCard: two terminals link one held card to two
// members at once: one link wins, the other is refused, and the card's
// points go to the winner only.
func testConcurrentLinksOfOneCard(t *testing.T, l cloud.Ledger) {
	for round := range 10 {
		t1, t2 := NewTill(t, l, fmt.Sprintf("a%d", round), "s1"), NewTill(t, l, fmt.Sprintf("b%d", round), "s1")
		c := Card(100 + round)
		t1.Send(t, l, t1.Earn(c, 1000, 10))
		b1, b2 := t1.Seal(t1.Enroll(c, loyalty.MemberID(fmt.Sprintf("x%d", round)))), t2.Seal(t2.Enroll(c, loyalty.MemberID(fmt.Sprintf("y%d", round))))
		var wg sync.WaitGroup
		var a1, a2 cloud.Applied
		var e1, e2 error
		wg.Add(2)
		go func() { defer wg.Done(); a1, e1 = l.Apply(ctx, b1) }()
		go func() { defer wg.Done(); a2, e2 = l.Apply(ctx, b2) }()
		wg.Wait()
		if e1 != nil || e2 != nil {
			t.Fatalf("round %d: %v, %v", round, e1, e2)
		}
		applied := 0
		for _, a := range []cloud.Applied{a1, a2} {
			if a.Results[0].Status == cloud.StatusApplied {
				applied++
			}
		}
		if applied != 1 {
			t.Errorf("round %d: %d links applied (%+v, %+v), want exactly 1", round, applied, a1.Results[0], a2.Results[0])
		}
		wantBalance(t, l, c, 10, 0)
	}
}
