package peers_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/offline/peers"
)

// errStoreCap marks a refusal by the store-wide cap: the journal's
// ErrOfflineCapReached, or the stand-in's.
var errStoreCap = errors.New("store offline cap reached")

// testJournal is a till's journal as the tests drive it: what Peers needs,
// plus the offline policy and append the agent runs after CheckRedeem.
type testJournal interface {
	peers.Journal
	hasPeerOp(card loyalty.CardHash, id loyalty.OpID) bool
	peerOps(card loyalty.CardHash) map[loyalty.OpID]peers.PeerRedeem
	// redeemOffline applies the offline policy with a store-wide allowance
	// of storeCap and appends op; a refusal by that cap wraps errStoreCap.
	redeemOffline(ctx context.Context, op *loyalty.Op, c peers.Check, storeCap loyalty.Points) (*loyalty.Op, error)
}

// redeemOffline is the stand-in's policy: what it knows, or what a peer
// reported, plus the redeem stays within the store cap.
func (j *memJournal) redeemOffline(ctx context.Context, op *loyalty.Op, c peers.Check, storeCap loyalty.Points) (*loyalty.Op, error) {
	known, err := j.OfflineRedeemed(ctx, op.Card)
	if err != nil {
		return nil, err
	}
	if max(known, c.Redeemed)-op.Points > storeCap {
		return nil, fmt.Errorf("%w: %d known + %d asked > %d", errStoreCap, max(known, c.Redeemed), -op.Points, storeCap)
	}
	j.mu.Lock()
	j.own[op.Card] -= op.Points
	j.mu.Unlock()
	return op, nil
}

// sqlJournal is a real offline/journal in t.TempDir(), behind FromJournal.
type sqlJournal struct {
	peers.Journal
	j    *journal.Journal
	asOf time.Time
}

func openSQLJournal(t testing.TB, terminal string, asOf time.Time) *sqlJournal {
	t.Helper()
	j, err := journal.Open(context.Background(), filepath.Join(t.TempDir(), "journal.db"),
		journal.Options{Terminal: terminal, Store: testStore, Logger: testLogger()})
	if err != nil {
		t.Fatalf("open %s's journal: %v", terminal, err)
	}
	t.Cleanup(func() {
		if err := j.Close(); err != nil {
			t.Errorf("close %s's journal: %v", terminal, err)
		}
	})
	return &sqlJournal{Journal: peers.FromJournal(j), j: j, asOf: asOf}
}

func (s *sqlJournal) hasPeerOp(card loyalty.CardHash, id loyalty.OpID) bool {
	_, ok := s.peerOps(card)[id]
	return ok
}

func (s *sqlJournal) peerOps(card loyalty.CardHash) map[loyalty.OpID]peers.PeerRedeem {
	rs, err := s.j.PeerRedeems(context.Background(), card)
	if err != nil {
		panic(fmt.Sprintf("read peer redeems: %v", err))
	}
	out := make(map[loyalty.OpID]peers.PeerRedeem, len(rs))
	for _, r := range rs {
		out[r.ID] = peers.PeerRedeem{Op: r.ID, Card: r.Card, Points: r.Points, Terminal: r.Terminal, Epoch: r.Epoch, Seq: r.Seq, At: r.At}
	}
	return out
}

// redeemOffline runs the journal's own offline policy, in the append's
// transaction, with the card's snapshot carrying a storeCap allowance.
func (s *sqlJournal) redeemOffline(ctx context.Context, op *loyalty.Op, _ peers.Check, storeCap loyalty.Points) (*loyalty.Op, error) {
	if _, ok, err := s.j.Snapshot(ctx, op.Card); err != nil {
		return nil, err
	} else if !ok {
		snap := loyalty.Snapshot{Card: op.Card, Member: "m-1", Balance: 1_000_000, AsOf: s.asOf,
			Allowance: &loyalty.Allowance{Points: storeCap, Expires: s.asOf.Add(48 * time.Hour)}}
		if err := s.j.PutSnapshots(ctx, []loyalty.Snapshot{snap}); err != nil {
			return nil, err
		}
	}
	stored, err := s.j.AppendOfflineRedeem(ctx, *op, journal.DefaultPolicy())
	if errors.Is(err, journal.ErrOfflineCapReached) {
		return nil, fmt.Errorf("%w: %w", errStoreCap, err)
	}
	if err != nil {
		return nil, err
	}
	return &stored, nil
}

// DropPeerRedeems lets Covered drop from the real journal.
func (s *sqlJournal) DropPeerRedeems(ctx context.Context, ids []loyalty.OpID) error {
	return s.j.DropPeerRedeems(ctx, ids)
}

var _ peers.PeerOpDropper = (*sqlJournal)(nil)
