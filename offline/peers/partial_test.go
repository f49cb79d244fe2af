package peers_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/offline/peers"
)

// Invariant 4 with a partial answer: C's gossip is cut, but the others
// still believe it alive (failure detection is slow here). A's question
// reaches B only: C may be redeeming the same card where nobody hears it,
// so A is not connected and IsolatedRedeemCap applies until C answers again.
func TestInvariant4_PartialAnswerFallsToIsolatedCap(t *testing.T) {
	slow := fastTiming()
	slow.ProbeInterval, slow.ProbeTimeout, slow.SuspicionMult = 5*time.Second, 2*time.Second, 6
	tills := newCluster(t, clusterOpts{n: 3, isolatedCap: 50, threshold: 0, gated: true, seed: 3, timing: &slow})
	a, c := tills[0], tills[2]
	card := testCard(t, "2012345678927")
	const storeCap = 300

	c.gate.closed.Store(true)
	// A refused redeem changes nothing, so A may try until B's answer
	// beats the query timeout on a loaded machine: the case under test is
	// B answering and C not.
	var (
		chk    peers.Check
		err    error
		capErr *peers.IsolatedCapError
	)
	waitFor(t, 20*time.Second, "A's question is answered by B and not by C", func() bool {
		chk, _, err = a.redeem(t, card, 60, storeCap)
		if !errors.As(err, &capErr) {
			t.Fatalf("A redeems 60 over a 50 isolated cap with C silent: got %v (check %+v), want *IsolatedCapError", err, chk)
		}
		return chk.Answered == 1
	})
	if !chk.Asked || chk.Peers != 2 || chk.Missing != 1 || !chk.Isolated {
		t.Errorf("A's check: %+v; want asked, 2 live peers, 1 answer, 1 missing, isolated", chk)
	}
	if capErr.Heard != 1 || !strings.Contains(capErr.Error(), "only some of the other tills") {
		t.Errorf("the cashier reads %q (heard %d); want it to say only some tills answered", capErr.Error(), capErr.Heard)
	}
	if _, _, err := a.redeem(t, card, 50, storeCap); err != nil {
		t.Fatalf("A redeems 50 within the isolated cap: %v", err)
	}
	// C, cut off, hears nobody either: the same cap, whatever A did.
	chk, _, err = c.redeem(t, card, 51, storeCap)
	if !errors.As(err, &capErr) || chk.Answered != 0 {
		t.Fatalf("cut-off C redeems 51: got %v (check %+v), want *IsolatedCapError with no answer", err, chk)
	}

	c.gate.closed.Store(false)
	waitFor(t, 20*time.Second, "every peer answers A again", func() bool {
		chk, err := a.p.CheckRedeem(context.Background(), card, 1)
		return err == nil && !chk.Isolated && chk.Answered == 2
	})
	if _, _, err := a.redeem(t, card, 200, storeCap); err != nil {
		t.Fatalf("A, connected again, redeems 200 with 50 of 300 used: %v", err)
	}
}

// Invariant 4 across a split: four tills, cut into A+B and two lone tills.
// A and B hear each other, but two of four is no majority: the other half
// may be together too, so both halves stay under IsolatedRedeemCap. Tills
// that left gracefully do not count against the quorum.
func TestInvariant4_NoQuorumNoFullAllowance(t *testing.T) {
	tills := newCluster(t, clusterOpts{n: 4, isolatedCap: 50, threshold: 0, gated: true, seed: 5})
	a, b, c, d := tills[0], tills[1], tills[2], tills[3]
	card := testCard(t, "2012345678934")
	const storeCap = 300

	c.gate.closed.Store(true)
	d.gate.closed.Store(true)
	waitFor(t, 15*time.Second, "A and B see C and D failed", func() bool { return a.p.AlivePeers() == 1 && b.p.AlivePeers() == 1 })
	var (
		chk peers.Check
		err error
	)
	waitFor(t, 20*time.Second, "B answers A's question", func() bool {
		chk, _, err = a.redeem(t, card, 60, storeCap)
		if !errors.Is(err, peers.ErrIsolatedCapReached) {
			t.Fatalf("A redeems 60 with only B of four answering: got %v (check %+v), want ErrIsolatedCapReached", err, chk)
		}
		return chk.Answered == 1
	})
	if chk.Quorum != 3 || chk.Missing != 0 || !chk.Isolated {
		t.Errorf("A's check: %+v; want B's answer, a quorum of 3, isolated", chk)
	}

	c.gate.closed.Store(false)
	d.gate.closed.Store(false)
	waitFor(t, 20*time.Second, "C and D rejoin", func() bool { return a.p.AlivePeers() == 3 })
	c.stop(t)
	d.stop(t)
	waitFor(t, 15*time.Second, "A sees C and D leave", func() bool { return a.p.AlivePeers() == 1 })
	waitFor(t, 20*time.Second, "A redeems 60 with B answering and C and D gone home", func() bool {
		chk, _, err = a.redeem(t, card, 60, storeCap)
		if err != nil && chk.Quorum != 2 {
			t.Fatalf("A's check after C and D left: %+v, %v; want a quorum of 2", chk, err)
		}
		return err == nil
	})
	if chk.Isolated || chk.Answered != 1 {
		t.Errorf("A's check after C and D left: %+v; want B's answer and connected", chk)
	}
}
