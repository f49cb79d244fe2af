package journal_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
)

// The view a writing journal answers from memory is the one its database
// holds: after appends (concurrent, several per group commit), snapshots,
// acknowledgements with snapshots, peer redeems and their drop, with
// readers filling the cache while commits are in flight. A read-only
// journal on the same file, which keeps no cache, is the reference. This
// defends invariant 4 (a stale balance would let a card overspend) and the
// balance a checkout prints.
func TestCachedViewAgreesWithTheDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j := openJournal(t, path)
	ro := openReadOnly(t, path)
	rng := rand.New(rand.NewPCG(6, 1))
	const cards = 6
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var peerIDs []loyalty.OpID
	for round := range 60 {
		stop := make(chan struct{})
		var readers sync.WaitGroup
		for r := range 2 { // readers racing the writer, filling the cache
			readers.Add(1)
			go func() {
				defer readers.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := j.View(ctx, cardHash((i+r)%cards)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		var appenders sync.WaitGroup
		for a := range 1 + rng.IntN(4) {
			op := earnOp(rng.IntN(cards))
			if a%3 == 2 {
				op = redeemOp(op.Card, loyalty.Points(1+rng.IntN(20)))
			}
			appenders.Add(1)
			go func() {
				defer appenders.Done()
				if _, err := j.Append(ctx, op); err != nil {
					t.Error(err)
				}
			}()
		}
		card := cardHash(rng.IntN(cards))
		now = now.Add(time.Minute)
		switch rng.IntN(5) {
		case 0:
			if err := j.PutSnapshots(ctx, []loyalty.Snapshot{{Card: card, Member: "m", Balance: loyalty.Points(rng.IntN(1000)), AsOf: now}}); err != nil {
				t.Fatal(err)
			}
		case 1:
			appenders.Wait()
			epoch, seq, err := j.Head(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if seq > 1 {
				seq = 1 + uint64(rng.IntN(int(seq)))
				if err := j.MarkAcked(ctx, epoch, seq, loyalty.Snapshot{Card: card, Balance: loyalty.Points(rng.IntN(1000)), AsOf: now}); err != nil {
					t.Fatal(err)
				}
			}
		case 2:
			id := loyalty.OpID{byte(round), 0xbe}
			peerIDs = append(peerIDs, id)
			if _, err := j.PutPeerRedeem(ctx, journal.PeerRedeem{ID: id, Card: card, Points: loyalty.Points(1 + rng.IntN(30)),
				Terminal: "till-2", Epoch: 1, Seq: uint64(round + 1), At: now}); err != nil {
				t.Fatal(err)
			}
		case 3:
			if len(peerIDs) > 0 {
				if err := j.DropPeerRedeems(ctx, peerIDs[:1]); err != nil {
					t.Fatal(err)
				}
				peerIDs = peerIDs[1:]
			}
		}
		appenders.Wait()
		close(stop)
		readers.Wait()
		for c := range cards {
			got, err := j.View(ctx, cardHash(c))
			if err != nil {
				t.Fatal(err)
			}
			want, err := ro.View(ctx, cardHash(c))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, card %d: the cached view is\n%+v\nthe database says\n%+v", round, c, got, want)
			}
		}
	}
}

// A member enrolled at this till is known here at once: balance 0 plus what
// the card did here since, until the cloud's snapshot takes over. The view
// is rebuilt from the journal after a restart.
func TestCardEnrolledHereIsKnownBeforeTheCloudAnswers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j := openJournal(t, path)
	card := cardHash(77)
	if v, err := j.View(ctx, card); err != nil || v.Known {
		t.Fatalf("View before the enrollment: known %v, %v; want unknown", v.Known, err)
	}
	if _, err := j.Append(ctx, earnOp(77)); err != nil { // earned before it was a member: not counted
		t.Fatal(err)
	}
	enroll := loyalty.Op{Kind: loyalty.OpEnroll, Card: card, Member: "m-new"}
	if _, err := j.Append(ctx, enroll); err != nil {
		t.Fatal(err)
	}
	earn := earnOp(77) // 28 points
	if _, err := j.Append(ctx, earn); err != nil {
		t.Fatal(err)
	}
	check := func(j *journal.Journal, when string) {
		t.Helper()
		v, err := j.View(ctx, card)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Known || !v.Enrolled || v.Snapshot.Member != "m-new" || v.Balance != 28 || v.Available() != 28 {
			t.Fatalf("View %s: got known %v enrolled %v member %q balance %d, want true true m-new 28", when, v.Known, v.Enrolled, v.Snapshot.Member, v.Balance)
		}
	}
	check(j, "after the enrollment")
	// The acknowledgement without a snapshot of the card changes nothing.
	if err := j.MarkAcked(ctx, 1, 3); err != nil {
		t.Fatal(err)
	}
	check(j, "after the acknowledgement")
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openJournal(t, path)
	check(j, "after a restart")
	// The cloud's snapshot, which holds the enrollment and the earn, takes over.
	if err := j.PutSnapshots(ctx, []loyalty.Snapshot{{Card: card, Member: "m-new", Balance: 28, Tier: "base", AsOf: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if v, err := j.View(ctx, card); err != nil || v.Enrolled || v.Balance != 28 || v.Snapshot.Tier != "base" {
		t.Fatalf("View after the snapshot: got enrolled %v balance %d tier %q (%v), want false 28 base", v.Enrolled, v.Balance, v.Snapshot.Tier, err)
	}
}

// Backlog counts what the cloud has not acknowledged from positions alone;
// it agrees with a row count (Stats) after failed appends that rolled back
// inside a transaction and after acknowledgements.
func TestBacklogAgreesWithTheRowCount(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, filepath.Join(t.TempDir(), "journal.db"))
	check := func(when string, want int64) {
		t.Helper()
		n, oldest, err := j.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := j.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != want || st.Unacked != want || !oldest.Equal(st.OldestUnacked) {
			t.Fatalf("%s: Backlog %d oldest %v, Stats %d oldest %v; want %d", when, n, oldest, st.Unacked, st.OldestUnacked, want)
		}
	}
	check("empty", 0)
	var first loyalty.Op
	for i := range 5 {
		op, err := j.Append(ctx, earnOp(i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = op
		}
	}
	// A duplicate fails inside its transaction, concurrently with good appends.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				j.Append(ctx, first)
			} else if _, err := j.Append(ctx, earnOp(10+i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	check("after 7 appends and 2 refused duplicates", 7)
	if err := j.MarkAcked(ctx, 1, 3); err != nil {
		t.Fatal(err)
	}
	check("after the cloud acknowledged 3", 4)
	if err := j.MarkAcked(ctx, 1, 7); err != nil {
		t.Fatal(err)
	}
	check("after the cloud acknowledged all", 0)
}
