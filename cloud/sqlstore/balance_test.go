package sqlstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// TestUnbalancedTransactionHaltsTheBatch defends invariant 3 and issue 3's
// "checks that halt rather than corrupt: every transaction's postings sum
// to zero": book.commit refuses a transaction whose postings do not sum to
// zero with cloud.ErrInvariant, and records none of its postings, so the
// batch rolls back instead of booking points out of nowhere. No correct op
// makes such a transaction, so only a direct call can show the check works.
func TestUnbalancedTransactionHaltsTheBatch(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := newBook(s, nil, 0)
	member := cloud.MemberOwner("M1")
	issued := cloud.ProgramAccount(cloud.AccountIssued, "T1")

	unbalanced := &txn{id: loyalty.OpID{1}, part: partMain, kind: kindEarn}
	unbalanced.add(issued, -100)
	unbalanced.add(cloud.OwnerAccount(cloud.AccountAvail, member), 101)
	if err := b.commit(unbalanced); !errors.Is(err, cloud.ErrInvariant) {
		t.Fatalf("commit of postings summing to 1: %v, want cloud.ErrInvariant", err)
	}
	if len(b.postings) != 0 || len(b.deltas) != 0 {
		t.Fatalf("the unbalanced transaction left %d postings and %d balance deltas in the book", len(b.postings), len(b.deltas))
	}

	balanced := &txn{id: loyalty.OpID{2}, part: partMain, kind: kindEarn}
	balanced.add(issued, -100)
	balanced.add(cloud.OwnerAccount(cloud.AccountAvail, member), 100)
	if err := b.commit(balanced); err != nil {
		t.Fatalf("commit of a balanced transaction: %v", err)
	}
	if len(b.postings) != 2 {
		t.Errorf("the balanced transaction left %d postings, want 2", len(b.postings))
	}
}
