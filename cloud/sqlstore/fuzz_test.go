package sqlstore_test

import (
	"context"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// FuzzApply reads the input as a program of ops from two terminals
// (earns, redeems online and offline, reversals of any earlier op, enrolls,
// adjusts, card-less earns, duplicates, cut into batches anywhere) and
// checks that Apply never fails on them, answers every op, and leaves the
// ledger conserved: every transaction balanced, every balance the sum of
// its postings, every owner's lots summing to its balance. A batch may be
// sent again, cut shorter: the answer is its replay, with the results the
// ops got the first time.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 1, 50, 1, 2, 1, 30, 0, 4, 0, 0, 0})
	f.Add([]byte{1, 0, 200, 1, 0, 0, 20, 9, 3, 2, 0, 0, 5, 0, 0, 1, 2, 0, 0, 0})
	f.Add([]byte{6, 3, 10, 0, 0, 3, 80, 0, 7, 3, 0, 0, 4, 0, 1, 0, 3, 3, 5, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 400 {
			return
		}
		ctx := context.Background()
		l := storetest.OpenSQLite(t, sqlstore.Options{})
		if err := l.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
			t.Fatal(err)
		}
		tills := []*storetest.Till{storetest.NewTill(t, l, "t1", "s1"), storetest.NewTill(t, l, "t2", "s2")}
		var sent []loyalty.Op
		pending := make([][]loyalty.Op, len(tills))
		flush := func(i int, again bool) {
			if len(pending[i]) == 0 {
				return
			}
			bt := tills[i].Seal(pending[i]...)
			a, err := l.Apply(ctx, bt)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if again {
				recut := bt
				n := (len(bt.Ops) + 1) / 2
				recut.LastSeq, recut.Ops, recut.Hash = bt.FirstSeq+uint64(n)-1, bt.Ops[:n], []byte("recut")
				r, err := l.Apply(ctx, recut)
				if err != nil || !r.Replay || len(r.Results) != n {
					t.Fatalf("the batch's first %d ops again: replay %v, %d results, %v; want their replay", n, r.Replay, len(r.Results), err)
				}
				for k := range n {
					if r.Results[k] != a.Results[k] {
						t.Fatalf("op %d again: %+v, first %+v", k, r.Results[k], a.Results[k])
					}
				}
			}
			if len(a.Results) != len(pending[i]) {
				t.Fatalf("got %d results for %d ops", len(a.Results), len(pending[i]))
			}
			for _, r := range a.Results {
				if r.Status < cloud.StatusApplied || r.Status > cloud.StatusRejected {
					t.Fatalf("op %d: status %d", r.Seq, r.Status)
				}
			}
			pending[i] = nil
		}
		for len(prog) >= 4 {
			kind, cardN, amount, extra := prog[0], prog[1], prog[2], prog[3]
			prog = prog[4:]
			ti := int(extra & 1)
			tl := tills[ti]
			c := storetest.Card(int(cardN % 5))
			var op loyalty.Op
			switch kind % 8 {
			case 0:
				op = tl.Earn(c, int64(amount)*100, loyalty.Points(amount))
			case 1:
				op = tl.Redeem(c, loyalty.Points(amount%60+1), extra&2 != 0)
			case 2:
				if len(sent) == 0 {
					continue
				}
				op = tl.Reverse(sent[int(amount)%len(sent)])
			case 3:
				op = tl.Enroll(c, loyalty.MemberID([]string{"ann", "ben", "cid"}[int(amount)%3]))
			case 4:
				op = tl.Adjust(c, loyalty.Points(int(amount)-128))
				if op.Points == 0 {
					continue
				}
			case 5:
				op = tl.Earn(loyalty.CardHash{}, int64(amount)*100, loyalty.Points(amount))
			case 6:
				if len(sent) == 0 {
					continue
				}
				// The same op again, maybe from the other terminal, which
				// books it to its own store (a batch claiming another
				// store is refused whole).
				op = sent[int(amount)%len(sent)]
				op.Terminal, op.Store = tl.ID, tl.Store
			case 7:
				flush(ti, extra&8 != 0)
				continue
			}
			if op.Kind == loyalty.OpEarn && amount == 0 {
				continue
			}
			sent = append(sent, op)
			pending[ti] = append(pending[ti], op)
			if extra&4 != 0 {
				flush(ti, extra&8 != 0)
			}
		}
		flush(0, true)
		flush(1, true)
		if _, err := l.Expire(ctx, storetest.Start().AddDate(1, 0, 1)); err != nil {
			t.Fatalf("expire: %v", err)
		}
	})
}
