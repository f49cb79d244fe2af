package journal_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tillpoint/tillpoint/offline/journal"
)

// A request key is durable exactly with its op: it survives a reopen, and a
// second request with the same key appends nothing.
func TestAppendRequestKeyIsStoredWithItsOpOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j := openJournal(t, path)
	first, err := j.AppendRequest(ctx, earnOp(1), journal.Request{Key: "k-1", Meta: []byte("reply-1")})
	if err != nil {
		t.Fatalf("AppendRequest: %v", err)
	}
	_, err = j.AppendRequest(ctx, earnOp(2), journal.Request{Key: "k-1", Meta: []byte("reply-2")})
	if !errors.Is(err, journal.ErrDuplicateRequest) {
		t.Fatalf("second AppendRequest with key k-1: got %v, want ErrDuplicateRequest", err)
	}
	if _, err := j.AppendRequest(ctx, earnOp(3), journal.Request{}); !errors.Is(err, journal.ErrInvalid) {
		t.Fatalf("AppendRequest with no key: got %v, want ErrInvalid", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	j = openJournal(t, path)
	req, op, ok, err := j.RequestByKey(ctx, "k-1")
	if err != nil || !ok {
		t.Fatalf("RequestByKey(k-1) after reopen: got found %v, err %v; want found", ok, err)
	}
	if op.ID != first.ID || !bytes.Equal(req.Meta, []byte("reply-1")) {
		t.Fatalf("RequestByKey(k-1): got op %s meta %q, want op %s meta %q", op.ID, req.Meta, first.ID, "reply-1")
	}
	if _, _, ok, err := j.RequestByKey(ctx, "k-2"); ok || err != nil {
		t.Fatalf("RequestByKey(k-2): got found %v, err %v; want not found", ok, err)
	}
	ops, err := j.OpsAfter(ctx, 0, 0, 10)
	if err != nil {
		t.Fatalf("OpsAfter: %v", err)
	}
	if len(ops) != 1 {
		t.Fatalf("ops stored: got %d, want 1 (the duplicate key must append nothing)", len(ops))
	}
	mustVerify(t, j)
}
