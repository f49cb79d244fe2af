package journal_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openAt(t *testing.T, c *clock) *journal.Journal {
	t.Helper()
	opts := testOptions()
	opts.Now = c.Now
	j, err := journal.Open(context.Background(), filepath.Join(t.TempDir(), "journal.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func redeemOp(card loyalty.CardHash, points loyalty.Points) loyalty.Op {
	return loyalty.Op{Kind: loyalty.OpRedeem, Card: card, Points: -points, Reward: "coffee"}
}

var testPolicy = journal.Policy{MaxSnapshotAge: 24 * time.Hour, OfflineRedeemCap: 300, Location: time.UTC}

func TestLocalViewIsSnapshotPlusUnackedOps(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	j := openAt(t, c)
	card := cardHash(42)
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{{Card: card, Member: "m-42", Balance: 1000, Tier: "gold", AsOf: c.Now()}}); err != nil {
		t.Fatal(err)
	}
	earn := earnOp(42) // 43 points
	if _, err := j.Append(ctx, earn); err != nil {
		t.Fatal(err)
	}
	first, err := j.Append(ctx, redeemOp(card, 200))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, earnOp(7)); err != nil { // another card
		t.Fatal(err)
	}
	v, err := j.View(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Known || v.Balance != 1000+43-200 || v.UnackedOps != 2 || v.Snapshot.Tier != "gold" {
		t.Fatalf("View: got known %v balance %d over %d unacked ops tier %q, want true 843 2 gold", v.Known, v.Balance, v.UnackedOps, v.Snapshot.Tier)
	}
	// An ack that brings no snapshot of the card leaves its snapshot as it
	// was, before the earn: the earn still counts on top of it.
	if err := j.MarkAcked(ctx, 1, 1); err != nil {
		t.Fatal(err)
	}
	if v, _ = j.View(ctx, card); v.Balance != 843 || v.UnackedOps != 2 {
		t.Fatalf("View after an ack of seq 1 without a snapshot: got balance %d over %d ops, want 843 over 2", v.Balance, v.UnackedOps)
	}
	// The ack's own snapshot holds the earn, so only the redeem is still added.
	if err := j.MarkAcked(ctx, 1, 1, loyalty.Snapshot{Card: card, Member: "m-42", Balance: 1043, Tier: "gold", AsOf: c.Now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if v, _ = j.View(ctx, card); v.Balance != 843 || v.UnackedOps != 1 {
		t.Fatalf("View after the ack of seq 1 with its snapshot: got balance %d over %d ops, want 843 over 1 (redeem %s)", v.Balance, v.UnackedOps, first.ID)
	}
	// An older snapshot arriving late does not replace the newer one.
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{{Card: card, Balance: 5, AsOf: c.Now().Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if s, ok, err := j.Snapshot(ctx, card); err != nil || !ok || s.Balance != 1043 {
		t.Fatalf("Snapshot after a stale put: got balance %d ok %v err %v, want 1043", s.Balance, ok, err)
	}
	if v, err := j.View(ctx, cardHash(999)); err != nil || v.Known {
		t.Fatalf("View(unknown card): got known %v err %v, want false, nil", v.Known, err)
	}
}

func TestOfflinePolicyRefusals(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	card := cardHash(1)
	for _, tc := range []struct {
		name     string
		snap     *loyalty.Snapshot
		age      time.Duration
		before   []loyalty.Points // offline redeems already made today
		peers    []loyalty.Points // peers' offline redeems
		redeem   loyalty.Points
		want     error
		wantText string
	}{
		{name: "no snapshot", redeem: 10, want: journal.ErrUnknownCard, wantText: "not known at this till"},
		{name: "snapshot too old", snap: &loyalty.Snapshot{Balance: 1000}, age: 25 * time.Hour, redeem: 10,
			want: journal.ErrSnapshotTooOld, wantText: "last confirmed 25 hours ago"},
		{name: "snapshot just young enough", snap: &loyalty.Snapshot{Balance: 1000}, age: 24*time.Hour - time.Minute, redeem: 10}, // 24h when checked
		{name: "more than the balance", snap: &loyalty.Snapshot{Balance: 150}, redeem: 151,
			want: journal.ErrInsufficientPoints, wantText: "150 points available, this reward needs 151"},
		{name: "exactly the balance", snap: &loyalty.Snapshot{Balance: 150}, redeem: 150},
		{name: "debt reduces the balance", snap: &loyalty.Snapshot{Balance: 150, Debt: 100}, redeem: 60,
			want: journal.ErrInsufficientPoints},
		{name: "own offline redeems reduce the balance", snap: &loyalty.Snapshot{Balance: 150}, before: []loyalty.Points{100}, redeem: 60,
			want: journal.ErrInsufficientPoints},
		{name: "peers' offline redeems reduce the balance", snap: &loyalty.Snapshot{Balance: 1000}, peers: []loyalty.Points{950}, redeem: 60,
			want: journal.ErrInsufficientPoints},
		{name: "daily cap reached", snap: &loyalty.Snapshot{Balance: 5000}, before: []loyalty.Points{200}, redeem: 101,
			want: journal.ErrOfflineCapReached, wantText: "at most 100 more"},
		{name: "daily cap exactly", snap: &loyalty.Snapshot{Balance: 5000}, before: []loyalty.Points{200}, redeem: 100},
		{name: "daily cap counts peers", snap: &loyalty.Snapshot{Balance: 5000}, before: []loyalty.Points{100}, peers: []loyalty.Points{150}, redeem: 51,
			want: journal.ErrOfflineCapReached},
		{name: "allowance replaces the cap", snap: &loyalty.Snapshot{Balance: 5000,
			Allowance: &loyalty.Allowance{Points: 1000, Expires: start.Add(48 * time.Hour)}}, before: []loyalty.Points{250}, redeem: 700},
		{name: "allowance reached with peers", snap: &loyalty.Snapshot{Balance: 5000,
			Allowance: &loyalty.Allowance{Points: 1000, Expires: start.Add(48 * time.Hour)}}, before: []loyalty.Points{250}, peers: []loyalty.Points{500}, redeem: 251,
			want: journal.ErrOfflineCapReached, wantText: "at most 250 more"},
		{name: "expired allowance falls back to the daily cap", snap: &loyalty.Snapshot{Balance: 5000,
			Allowance: &loyalty.Allowance{Points: 1000, Expires: start}}, redeem: 301,
			want: journal.ErrOfflineCapReached},
		{name: "expired zero allowance stays zero", snap: &loyalty.Snapshot{Balance: 5000,
			Allowance: &loyalty.Allowance{Points: 0, Expires: start}}, redeem: 1,
			want: journal.ErrOfflineCapReached, wantText: "at most 0 more"},
		{name: "expired allowance under the daily cap still binds", snap: &loyalty.Snapshot{Balance: 5000,
			Allowance: &loyalty.Allowance{Points: 200, Expires: start}}, before: []loyalty.Points{150}, redeem: 51,
			want: journal.ErrOfflineCapReached, wantText: "at most 50 more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{t: start}
			j := openAt(t, c)
			if tc.snap != nil {
				s := *tc.snap
				s.Card, s.AsOf = card, start.Add(-tc.age)
				if err := j.PutSnapshots(ctx, []loyalty.Snapshot{s}); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range tc.before {
				if _, err := j.AppendOfflineRedeem(ctx, redeemOp(card, p), journal.Policy{MaxSnapshotAge: 1000 * time.Hour, OfflineRedeemCap: 1 << 40}); err != nil {
					t.Fatalf("setup redeem of %d: %v", p, err)
				}
			}
			for i, p := range tc.peers {
				r := journal.PeerRedeem{ID: loyalty.OpID{0x01, byte(i) + 1}, Card: card, Points: p, Terminal: "till-2", Epoch: 1, Seq: uint64(i + 1), At: start.Add(30 * time.Second)}
				if added, err := j.PutPeerRedeem(ctx, r); err != nil || !added {
					t.Fatalf("PutPeerRedeem: got added %v err %v, want true, nil", added, err)
				}
			}
			c.Add(time.Minute)
			_, checkErr := j.CheckOfflineRedeem(ctx, card, tc.redeem, testPolicy)
			op, appendErr := j.AppendOfflineRedeem(ctx, redeemOp(card, tc.redeem), testPolicy)
			for _, err := range []error{checkErr, appendErr} {
				if tc.want == nil {
					if err != nil {
						t.Fatalf("got %v, want the redeem allowed", err)
					}
					continue
				}
				var re *journal.RefusalError
				if !errors.Is(err, tc.want) || !errors.As(err, &re) {
					t.Fatalf("got %v, want a *RefusalError wrapping %v", err, tc.want)
				}
				if !strings.Contains(err.Error(), tc.wantText) {
					t.Fatalf("got message %q, want it to contain %q", err.Error(), tc.wantText)
				}
			}
			if tc.want == nil && (!op.Offline || op.Seq != uint64(len(tc.before)+1)) {
				t.Fatalf("allowed redeem: got offline %v seq %d, want true and %d", op.Offline, op.Seq, len(tc.before)+1)
			}
			if tc.want != nil {
				s, _ := j.Stats(ctx)
				if s.Ops != int64(len(tc.before)) {
					t.Fatalf("refused redeem: got %d ops, want %d: a refusal appended something", s.Ops, len(tc.before))
				}
			}
		})
	}
}

// TestOfflineRedeemsRacingOnOneCardStayWithinCap defends invariant 4 on one
// terminal: concurrent redeems on one card are checked and appended in one
// transaction each, so together they cannot pass the cap.
func TestOfflineRedeemsRacingOnOneCardStayWithinCap(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	j := openAt(t, c)
	card := cardHash(5)
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{{Card: card, Balance: 10000, AsOf: c.Now()}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 20 {
		wg.Go(func() {
			_, err := j.AppendOfflineRedeem(ctx, redeemOp(card, 40), testPolicy)
			switch {
			case err == nil:
				mu.Lock()
				allowed++
				mu.Unlock()
			case !errors.Is(err, journal.ErrOfflineCapReached):
				t.Errorf("redeem: got %v, want nil or ErrOfflineCapReached", err)
			}
		})
	}
	wg.Wait()
	if want := int(testPolicy.OfflineRedeemCap / 40); allowed != want {
		t.Fatalf("got %d redeems of 40 allowed under a cap of %d, want %d", allowed, testPolicy.OfflineRedeemCap, want)
	}
}

// TestPeerRedeemsDedupeCountAndDrop: a peer's redeem is recorded once by op
// ID, counts against the card (balance and OfflineRedeemed) whatever the
// snapshot's time, and goes only when DropPeerRedeems names it.
func TestPeerRedeemsDedupeCountAndDrop(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	j := openAt(t, c)
	card := cardHash(9)
	r1 := journal.PeerRedeem{ID: loyalty.OpID{1}, Card: card, Points: 100, Terminal: "till-2", Epoch: 1, Seq: 4, At: c.Now()}
	r2 := journal.PeerRedeem{ID: loyalty.OpID{2}, Card: card, Points: 50, Terminal: "till-3", Epoch: 1, Seq: 9, At: c.Now().Add(time.Hour)}
	for i, tc := range []struct {
		r    journal.PeerRedeem
		want bool
	}{{r1, true}, {r1, false}, {r2, true}} {
		if added, err := j.PutPeerRedeem(ctx, tc.r); err != nil || added != tc.want {
			t.Fatalf("PutPeerRedeem #%d: got %v, %v; want %v, nil", i, added, err, tc.want)
		}
	}
	own := r1
	own.ID, own.Terminal = loyalty.OpID{3}, testTerminal
	if _, err := j.PutPeerRedeem(ctx, own); !errors.Is(err, journal.ErrInvalid) {
		t.Fatalf("PutPeerRedeem(own terminal): got %v, want ErrInvalid", err)
	}
	// A snapshot newer than r1 by the clocks does not drop it: only the
	// peer's acknowledgement watermark can tell the cloud has it.
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{{Card: card, Balance: 1000, AsOf: c.Now().Add(30 * time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.AppendOfflineRedeem(ctx, redeemOp(card, 20), journal.Policy{MaxSnapshotAge: time.Hour, OfflineRedeemCap: 1000}); err != nil {
		t.Fatal(err)
	}
	if got, err := j.OfflineRedeemed(ctx, card); err != nil || got != 170 {
		t.Fatalf("OfflineRedeemed: got %d, %v; want 100 + 50 from peers + 20 own", got, err)
	}
	if v, err := j.View(ctx, card); err != nil || v.PeerRedeemed != 150 || v.Available() != 1000-20-150 {
		t.Fatalf("View: got peer redeemed %d available %d (%v), want 150 and 830", v.PeerRedeemed, v.Available(), err)
	}
	if err := j.DropPeerRedeems(ctx, []loyalty.OpID{r1.ID, {0xee}}); err != nil {
		t.Fatal(err)
	}
	rs, err := j.PeerRedeems(ctx, card)
	if err != nil || len(rs) != 1 || rs[0].ID != r2.ID || rs[0].Points != 50 || rs[0].Terminal != "till-3" || rs[0].Seq != 9 {
		t.Fatalf("PeerRedeems after dropping r1: got %+v, %v; want only r2", rs, err)
	}
	if got, err := j.OfflineRedeemed(ctx, card); err != nil || got != 70 {
		t.Fatalf("OfflineRedeemed after the drop: got %d, %v; want 70", got, err)
	}
}

func TestSealedBatchesAreStoredOnceAndDroppedOnAck(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	for i := range 10 {
		if _, err := j.Append(ctx, earnOp(i)); err != nil {
			t.Fatal(err)
		}
	}
	b1, b2 := []byte("batch 1..4 signed"), []byte("batch 5..8 signed")
	if err := j.PutSealed(ctx, 1, 1, 4, b1); err != nil {
		t.Fatalf("PutSealed(1..4): %v", err)
	}
	if err := j.PutSealed(ctx, 1, 1, 4, b1); err != nil {
		t.Fatalf("PutSealed(1..4) again, same bytes: got %v, want nil", err)
	}
	if err := j.PutSealed(ctx, 1, 1, 4, []byte("resigned")); !errors.Is(err, journal.ErrSealedConflict) {
		t.Fatalf("PutSealed(1..4) with other bytes: got %v, want ErrSealedConflict", err)
	}
	if err := j.PutSealed(ctx, 1, 3, 6, b2); !errors.Is(err, journal.ErrSealedConflict) {
		t.Fatalf("PutSealed(3..6) overlapping: got %v, want ErrSealedConflict", err)
	}
	if err := j.PutSealed(ctx, 1, 9, 12, b2); !errors.Is(err, journal.ErrInvalid) {
		t.Fatalf("PutSealed(9..12) past the journal: got %v, want ErrInvalid", err)
	}
	if err := j.PutSealed(ctx, 1, 5, 8, b2); err != nil {
		t.Fatalf("PutSealed(5..8): %v", err)
	}
	bs, err := j.Sealed(ctx)
	if err != nil || len(bs) != 2 || string(bs[0].Payload) != string(b1) || bs[1].FirstSeq != 5 || bs[1].LastSeq != 8 {
		t.Fatalf("Sealed: got %+v, %v; want 1..4 and 5..8 with their bytes", bs, err)
	}
	if err := j.MarkAcked(ctx, 1, 4); err != nil {
		t.Fatal(err)
	}
	if bs, _ = j.Sealed(ctx); len(bs) != 1 || bs[0].FirstSeq != 5 {
		t.Fatalf("Sealed after ack of 4: got %d batches, want only 5..8", len(bs))
	}
	if err := j.DeleteSealed(ctx, 1, 5); err != nil {
		t.Fatal(err)
	}
	if bs, _ = j.Sealed(ctx); len(bs) != 0 {
		t.Fatalf("Sealed after DeleteSealed: got %d batches, want 0", len(bs))
	}
}

// TestMarkAckedSnapshotsKeepsBalanceSteady: the acknowledgement and the
// snapshots it carries land in one transaction, so the local view never
// counts an acknowledged op twice or drops it.
func TestMarkAckedSnapshotsKeepsBalanceSteady(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	j := openAt(t, c)
	card := cardHash(42)
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{{Card: card, Balance: 1000, AsOf: c.Now()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, earnOp(42)); err != nil { // 43 points
		t.Fatal(err)
	}
	c.Add(time.Minute)
	fresh := loyalty.Snapshot{Card: card, Balance: 1043, AsOf: c.Now()}
	if err := j.MarkAcked(ctx, 1, 2, fresh); !errors.Is(err, journal.ErrAckAhead) {
		t.Fatalf("MarkAcked(1, 2) with one op: got %v, want ErrAckAhead", err)
	}
	if v, _ := j.View(ctx, card); v.Balance != 1043 || v.Snapshot.Balance != 1000 {
		t.Fatalf("after a refused ack: got balance %d on snapshot %d, want 1043 on the old snapshot 1000", v.Balance, v.Snapshot.Balance)
	}
	if err := j.MarkAcked(ctx, 1, 1, fresh); err != nil {
		t.Fatal(err)
	}
	if v, _ := j.View(ctx, card); v.Balance != 1043 || v.UnackedOps != 0 || v.Snapshot.Balance != 1043 {
		t.Fatalf("after the ack: got balance %d with %d unacked ops on snapshot %d, want 1043, 0, 1043", v.Balance, v.UnackedOps, v.Snapshot.Balance)
	}
	if e, s, err := j.Acked(ctx); err != nil || e != 1 || s != 1 {
		t.Fatalf("Acked: got %d, %d, %v; want 1, 1", e, s, err)
	}
	if e, s, err := j.Head(ctx); err != nil || e != 1 || s != 1 {
		t.Fatalf("Head: got %d, %d, %v; want 1, 1", e, s, err)
	}
}

// TestOfflineRedeemRetryIsDuplicateNotRefusal: a retry of a durable offline
// redeem (same op ID) reports the stored op, even when the policy would
// now refuse a new redeem of that size.
func TestOfflineRedeemRetryIsDuplicateNotRefusal(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	j := openAt(t, c)
	card := cardHash(3)
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{{Card: card, Balance: 1000, AsOf: c.Now()}}); err != nil {
		t.Fatal(err)
	}
	first, err := j.AppendOfflineRedeem(ctx, redeemOp(card, 250), testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	retry := redeemOp(card, 250)
	retry.ID = first.ID
	got, err := j.AppendOfflineRedeem(ctx, retry, testPolicy)
	if !errors.Is(err, journal.ErrDuplicateOp) || got.Seq != first.Seq {
		t.Fatalf("retry: got seq %d, %v; want the stored seq %d and ErrDuplicateOp", got.Seq, err, first.Seq)
	}
}

// TestAcknowledgedRedeemIsHeldByItsAcksSnapshotWhateverTheClocks: a till
// whose clock runs one hour ahead of the cloud's redeems offline; the
// cloud acknowledges the redeem with a fresh snapshot (the balance already
// reduced, a fresh allowance). That snapshot holds the redeem: it is not
// counted again against the new allowance, whatever the two clocks say
// (DESIGN: a terminal's clock is recorded, never trusted for ordering).
func TestAcknowledgedRedeemIsHeldByItsAcksSnapshotWhateverTheClocks(t *testing.T) {
	ctx := context.Background()
	cloudNow := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	skew := time.Hour // the till's clock is one hour ahead of the cloud's
	c := &clock{t: cloudNow.Add(skew)}
	j := openAt(t, c)
	card := cardHash(77)

	s1 := loyalty.Snapshot{Card: card, Member: "m-77", Balance: 5000, AsOf: cloudNow,
		Allowance: &loyalty.Allowance{Points: 1000, Expires: cloudNow.Add(24 * time.Hour)}}
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{s1}); err != nil {
		t.Fatal(err)
	}
	op, err := j.AppendOfflineRedeem(ctx, redeemOp(card, 800), testPolicy)
	if err != nil {
		t.Fatalf("first offline redeem: %v", err)
	}
	// Five minutes later (cloud time) the link is back and the cloud
	// acknowledges the redeem with a fresh snapshot that holds it.
	c.Add(5 * time.Minute)
	s2 := loyalty.Snapshot{Card: card, Member: "m-77", Balance: 4200, AsOf: cloudNow.Add(5 * time.Minute),
		Allowance: &loyalty.Allowance{Points: 1000, Expires: cloudNow.Add(5*time.Minute + 24*time.Hour)}}
	if err := j.MarkAcked(ctx, op.Epoch, op.Seq, s2); err != nil {
		t.Fatal(err)
	}
	v, err := j.View(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if v.Balance != 4200 || v.UnackedOps != 0 {
		t.Fatalf("view after the ack: balance %d over %d unacked ops, want 4200 over 0", v.Balance, v.UnackedOps)
	}
	used, err := j.OfflineRedeemed(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if used != 0 {
		t.Errorf("OfflineRedeemed after the ack with a fresh snapshot: got %d, want 0 (the snapshot holds the acknowledged redeem)", used)
	}
	// The link drops again: the fresh allowance of 1000 is untouched.
	if _, err := j.AppendOfflineRedeem(ctx, redeemOp(card, 500), testPolicy); err != nil {
		var re *journal.RefusalError
		if errors.As(err, &re) {
			t.Fatalf("offline redeem of 500 against a fresh allowance of 1000 refused: %v (available %d)", err, re.Available)
		}
		t.Fatal(err)
	}
}

// TestAllowanceCountsEveryRedeemTheCloudHasNotSeen (invariant 4): a redeem
// appended as online (the agent believed the cloud reachable) that the
// cloud has not acknowledged is, like an offline one, spent without the
// cloud: it counts against the allowance, so the card cannot redeem more
// than its allowance before the cloud sees any of it.
func TestAllowanceCountsEveryRedeemTheCloudHasNotSeen(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := &clock{t: start}
	j := openAt(t, c)
	card := cardHash(79)
	s := loyalty.Snapshot{Card: card, Member: "m-79", Balance: 1000, AsOf: start,
		Allowance: &loyalty.Allowance{Points: 100, Expires: start.Add(24 * time.Hour)}}
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{s}); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Minute)
	if _, err := j.Append(ctx, redeemOp(card, 400)); err != nil { // "online", never acknowledged
		t.Fatal(err)
	}
	c.Add(time.Minute)
	if _, err := j.AppendOfflineRedeem(ctx, redeemOp(card, 100), testPolicy); err == nil {
		t.Fatalf("a card with an allowance of 100 redeemed 400 (unacknowledged) + 100 offline without the cloud seeing any of it")
	}
}

// TestPeerRedeemsCannotWrapTheBalance (invariant 4): a peer's redeem of
// an absurd size (a buggy or compromised till of the roster) is refused,
// and a view never wraps around into a spendable balance.
func TestPeerRedeemsCannotWrapTheBalance(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	j := openAt(t, &clock{t: start})
	card := cardHash(80)
	for _, pts := range []loyalty.Points{loyalty.MaxOpPoints + 1, 1<<63 - 1} {
		r := journal.PeerRedeem{ID: loyalty.OpID{0x02, 1}, Card: card, Points: pts, Terminal: "till-2", Epoch: 1, Seq: 1, At: start}
		if _, err := j.PutPeerRedeem(ctx, r); !errors.Is(err, journal.ErrInvalid) {
			t.Errorf("PutPeerRedeem of %d points: %v, want ErrInvalid", pts, err)
		}
	}
	v := journal.View{Known: true, Snapshot: loyalty.Snapshot{Debt: 10}, PeerRedeemed: 1<<63 - 1}
	if got := v.Available(); got > 0 {
		t.Errorf("Available of a card in debt with a huge peer redeem: %d, want at most 0", got)
	}
	v = journal.View{Known: true, Balance: -10, Snapshot: loyalty.Snapshot{Debt: -(1<<63 - 1)}}
	if got := v.Available(); got < 0 {
		t.Errorf("Available with a huge negative debt: %d, want it to saturate, not wrap below 0", got)
	}
}

// TestLegacySnapshotsCountTheirAllowanceAsBefore (invariant 4 across an
// upgrade): a snapshot stored before snapshots recorded the position they
// hold (migration 0003) counts against its allowance, as it did then, the
// offline redeems made since its AsOf, acknowledged or not: read as
// holding everything up to the watermark, it let an acknowledged offline
// redeem be spent again (found by review).
func TestLegacySnapshotsCountTheirAllowanceAsBefore(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	c := &clock{t: start}
	j := openAt(t, c)
	card := cardHash(81)
	s := loyalty.Snapshot{Card: card, Member: "m-81", Balance: 1000, AsOf: start,
		Allowance: &loyalty.Allowance{Points: 300, Expires: start.Add(24 * time.Hour)}}
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{s}); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	op, err := j.AppendOfflineRedeem(ctx, redeemOp(card, 200), testPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.MarkAcked(ctx, op.Epoch, op.Seq); err != nil { // an ack without a snapshot of the card
		t.Fatal(err)
	}
	if err := journal.ForgetSnapshotCovers(ctx, j); err != nil {
		t.Fatal(err)
	}
	if got, err := j.OfflineRedeemed(ctx, card); err != nil || got != 200 {
		t.Errorf("OfflineRedeemed against a legacy snapshot: %d (%v), want 200", got, err)
	}
	if v, err := j.View(ctx, card); err != nil || v.Balance != 1000 {
		t.Errorf("view of a legacy snapshot: balance %d (%v), want 1000, as the journal showed it before", v.Balance, err)
	}
	if _, err := j.AppendOfflineRedeem(ctx, redeemOp(card, 200), testPolicy); !errors.Is(err, journal.ErrOfflineCapReached) {
		t.Errorf("a second offline redeem of 200 against an allowance of 300: %v, want ErrOfflineCapReached", err)
	}
}
