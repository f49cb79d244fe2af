package sqlstore_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/loyalty"
)

// What the cloud server does with a ledger: enroll a terminal, publish
// rules, apply a verified batch and answer a batch that skips ahead.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ledger")
	defer os.RemoveAll(dir)
	l, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "ledger.db"), sqlstore.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

	// The operator makes a code; the terminal enrolls with it once.
	l.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "7KQ2-M9XD", Store: "store-7", Terminal: "till-1", Expires: now.Add(time.Hour)})
	pub, _, _ := ed25519.GenerateKey(nil)
	term, _ := l.Enroll(ctx, "7KQ2-M9XD", cloud.TerminalKey{PublicKey: pub, KeyID: "till-1/1"}, now)
	_, err = l.Enroll(ctx, "7KQ2-M9XD", cloud.TerminalKey{PublicKey: pub, KeyID: "till-1/1"}, now)
	fmt.Println(term.ID, term.Status, errors.Is(err, cloud.ErrEnrollCode))

	l.PublishRules(ctx, loyalty.Rules{Version: 1, Program: "demo", Currency: "EUR", BasePoints: 1, BasePer: 100}, now)

	// A batch the server decoded and verified.
	card := loyalty.CardHash{1}
	earn := loyalty.Op{ID: loyalty.OpID{0x01, 0x90}, Kind: loyalty.OpEarn, Store: "store-7", Terminal: "till-1", Epoch: 1, Seq: 1,
		WallTime: now, Card: card, Points: 12, RulesVersion: 1,
		Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "coffee", Quantity: 1, Amount: 1250}}}}
	batch := cloud.Batch{Terminal: "till-1", Epoch: 1, FirstSeq: 1, LastSeq: 1, Hash: []byte("batch-1"), Ops: []loyalty.Op{earn}, ReceivedAt: now}
	ack, err := l.Apply(ctx, batch)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ack.Watermark, ack.Results[0].Status, ack.Results[0].Points, ack.Snapshots[0].Balance)

	// The same bytes again: the same answer, nothing applied twice.
	again, _ := l.Apply(ctx, batch)
	fmt.Println(again.Replay, again.Results[0].Status, again.Snapshots[0].Balance)

	// A batch that skips sequence 2: the server answers 409 with the watermark.
	skip := earn
	skip.ID, skip.Seq = loyalty.OpID{0x01, 0x91}, 3
	_, err = l.Apply(ctx, cloud.Batch{Terminal: "till-1", Epoch: 1, FirstSeq: 3, LastSeq: 3, Hash: []byte("batch-3"), Ops: []loyalty.Op{skip}, ReceivedAt: now})
	var seq *cloud.SequenceError
	if errors.As(err, &seq) && errors.Is(err, cloud.ErrGap) {
		fmt.Println("gap, resend from", seq.Watermark+1)
	}
	// Output:
	// till-1 active true
	// 1 applied 12 12
	// true applied 12
	// gap, resend from 2
}
