package storetest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Start is the start of test time: every clock in the suite counts from it.
func Start() time.Time { return time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC) }

// TestRules is rules version 1: 1 point per 1.00 EUR, points live 12
// months, Silver from 100 qualifying points (x1.5), Gold from 1,000 (x2).
func TestRules(version uint32) loyalty.Rules {
	return loyalty.Rules{
		Version: version, Program: "test", Currency: "EUR", BasePoints: 1, BasePer: 100, ExpiryMonths: 12,
		Tiers: []loyalty.Tier{{Name: "Silver", Threshold: 100, Multiplier: 150}, {Name: "Gold", Threshold: 1000, Multiplier: 200}},
	}
}

// Card returns the keyed hash of a test card n.
func Card(n int) loyalty.CardHash {
	tok, err := loyalty.NewCardToken(loyalty.CardBarcode, fmt.Sprintf("2000%09d", n))
	if err != nil {
		panic(err)
	}
	return tok.Hash(loyalty.CardKey("storetest card key"))
}

// Till plays a store terminal: it enrolls, numbers its ops, chains its
// batches' hashes and sends them to a ledger.
type Till struct {
	ID, Store string
	Epoch     uint32
	Seq       uint64 // last sequence sealed
	Prev      []byte // hash of the last batch sealed
	Now       time.Time
	rnd       *rand.ChaCha8
	hlc       *loyalty.HLClock
}

// NewTill enrolls a terminal of store on l and returns it at epoch 1.
func NewTill(t testing.TB, l cloud.Ledger, id, store string) *Till {
	t.Helper()
	ctx := context.Background()
	code := "code-" + id
	if err := l.CreateEnrollCode(ctx, cloud.EnrollCode{Code: code, Store: store, Terminal: id, Expires: Start().Add(time.Hour), Created: Start()}); err != nil {
		t.Fatalf("create enroll code for %s: %v", id, err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	if _, err := l.Enroll(ctx, code, cloud.TerminalKey{PublicKey: pub, KeyID: id + "-k1"}, Start()); err != nil {
		t.Fatalf("enroll %s: %v", id, err)
	}
	var seed [32]byte
	copy(seed[:], id)
	tl := &Till{ID: id, Store: store, Epoch: 1, Now: Start(), rnd: rand.NewChaCha8(seed), hlc: new(loyalty.HLClock)}
	tl.hlc.Now = func() time.Time { return tl.Now }
	return tl
}

func (tl *Till) op(kind loyalty.OpKind, c loyalty.CardHash, pts loyalty.Points) loyalty.Op {
	tl.Now = tl.Now.Add(time.Second)
	id, err := loyalty.NewOpID(tl.Now, tl.rnd)
	if err != nil {
		panic(err)
	}
	return loyalty.Op{ID: id, Kind: kind, Store: tl.Store, Terminal: tl.ID, WallTime: tl.Now, HLC: tl.hlc.Tick(), Card: c, Points: pts, RulesVersion: 1}
}

// Earn is an earn of pts for a basket of cents EUR on card c.
func (tl *Till) Earn(c loyalty.CardHash, cents int64, pts loyalty.Points) loyalty.Op {
	op := tl.op(loyalty.OpEarn, c, pts)
	op.Basket = &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "sku-1", Category: "food", Quantity: 1, Amount: cents}}}
	return op
}

// Redeem spends pts (positive) from card c.
func (tl *Till) Redeem(c loyalty.CardHash, pts loyalty.Points, offline bool) loyalty.Op {
	op := tl.op(loyalty.OpRedeem, c, -pts)
	op.Reward, op.Offline = "reward", offline
	return op
}

// Reverse undoes target.
func (tl *Till) Reverse(target loyalty.Op) loyalty.Op {
	op := tl.op(loyalty.OpReverse, target.Card, -target.Points)
	op.Reverses = target.ID
	return op
}

// Enroll links card c to member m.
func (tl *Till) Enroll(c loyalty.CardHash, m loyalty.MemberID) loyalty.Op {
	op := tl.op(loyalty.OpEnroll, c, 0)
	op.Member = m
	return op
}

// Adjust corrects card c by pts.
func (tl *Till) Adjust(c loyalty.CardHash, pts loyalty.Points) loyalty.Op {
	op := tl.op(loyalty.OpAdjust, c, pts)
	op.Reason = "goodwill"
	return op
}

// Seal numbers ops as the next batch and chains it to the previous one.
func (tl *Till) Seal(ops ...loyalty.Op) cloud.Batch {
	b := cloud.Batch{Terminal: tl.ID, Epoch: tl.Epoch, FirstSeq: tl.Seq + 1, PrevHash: tl.Prev, ReceivedAt: tl.Now.Add(time.Second)}
	h := sha256.New()
	h.Write(tl.Prev)
	for i := range ops {
		tl.Seq++
		ops[i].Epoch, ops[i].Seq, ops[i].Terminal = tl.Epoch, tl.Seq, tl.ID
		h.Write(ops[i].AppendCanonical(nil))
	}
	b.LastSeq, b.Ops, b.Hash = tl.Seq, ops, h.Sum(nil)
	tl.Prev = b.Hash
	return b
}

// NewEpoch starts a new journal epoch, as after a restore from backup.
func (tl *Till) NewEpoch() {
	tl.Epoch++
	tl.Seq, tl.Prev = 0, nil
}

// Send seals ops and applies them, failing t on error.
func (tl *Till) Send(t testing.TB, l cloud.Ledger, ops ...loyalty.Op) cloud.Applied {
	t.Helper()
	a, err := l.Apply(context.Background(), tl.Seal(ops...))
	if err != nil {
		t.Fatalf("apply batch %d..%d of %s: %v", tl.Seq-uint64(len(ops))+1, tl.Seq, tl.ID, err)
	}
	return a
}
