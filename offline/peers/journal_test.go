package peers_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/peers"
)

// FromJournal on a real journal: peer redeems recorded once, and the
// store-wide figure counts the peers' redeems and this terminal's own
// offline redeems until the cloud acknowledges them, nothing else.
func TestFromJournalCountsOwnAndPeerOfflineRedeems(t *testing.T) {
	ctx := context.Background()
	j := openSQLJournal(t, "till-a", time.Now().Add(-time.Hour))
	card, other := testCard(t, "2012345678996"), testCard(t, "2012345679009")
	appendOp := func(kind loyalty.OpKind, c loyalty.CardHash, pts loyalty.Points, offline bool) loyalty.Op {
		t.Helper()
		id, err := loyalty.NewOpID(time.Now(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		op := loyalty.Op{ID: id, Kind: kind, Terminal: "till-a", WallTime: time.Now(), Card: c, Points: pts, Offline: offline}
		if kind == loyalty.OpEarn {
			op.Basket = &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "1", Quantity: 1, Amount: 100}}}
		}
		stored, err := j.j.Append(ctx, op)
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	want := func(step string, w loyalty.Points) {
		t.Helper()
		got, err := j.OfflineRedeemed(ctx, card)
		if err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("%s: got %d points redeemed offline, want %d", step, got, w)
		}
	}
	want("empty journal", 0)
	first := appendOp(loyalty.OpRedeem, card, -30, true)
	appendOp(loyalty.OpRedeem, card, -20, true)
	appendOp(loyalty.OpRedeem, card, -10, false) // online, but the cloud has not seen it yet
	appendOp(loyalty.OpRedeem, other, -99, true)
	appendOp(loyalty.OpEarn, card, 7, true)
	want("own redeems the cloud has not seen", 60)

	id, _ := loyalty.NewOpID(time.Now(), rand.Reader)
	r := peers.PeerRedeem{Op: id, Card: card, Points: 40, Terminal: "till-b", Epoch: 1, Seq: 3, At: time.Now().UTC().Truncate(time.Millisecond)}
	for i, wantNew := range []bool{true, false} {
		isNew, err := j.RecordPeerRedeem(ctx, r)
		if err != nil || isNew != wantNew {
			t.Fatalf("record #%d: got %t, %v; want %t", i+1, isNew, err, wantNew)
		}
	}
	want("with a peer's redeem, recorded once", 100)

	if err := j.j.MarkAcked(ctx, first.Epoch, first.Seq); err != nil {
		t.Fatal(err)
	}
	want("after the cloud acknowledged the first", 70)
	appendOp(loyalty.OpRedeem, card, -5, true)
	want("one more offline", 75)
}
