package batch_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

func sampleAck() *batch.Ack {
	a := &batch.Ack{
		Terminal: "T-01", Epoch: 2, Status: batch.AckApplied, Watermark: 103,
		RulesVersion: 4, Time: t0.Add(time.Hour), HLC: loyalty.HLC(42 << 16),
	}
	a.LastHash[0], a.BatchHash[1] = 1, 2
	for i, o := range ops("T-01", 2, 101, 3) {
		r := batch.Result{Seq: o.Seq, ID: o.ID, Outcome: batch.Applied}
		if i == 1 {
			r.Outcome, r.Reason = batch.Rejected, batch.RejectConflict
		}
		if i == 2 {
			r.Outcome, r.Adjusted = batch.Duplicate, -3
		}
		a.Results = append(a.Results, r)
	}
	var card loyalty.CardHash
	card[31] = 9
	a.Snapshots = []loyalty.Snapshot{{
		Card: card, Member: "M-7", Balance: 1234, Debt: 10, Tier: "silver", NextTier: "gold", ToNextTier: 766,
		Expiring:  []loyalty.ExpiringPoints{{Points: 100, At: t0.AddDate(0, 3, 0)}},
		Allowance: &loyalty.Allowance{Points: 500, Expires: t0.Add(72 * time.Hour)},
		AsOf:      t0.Add(time.Hour),
	}}
	return a
}

func TestSealOpenAckRoundTrip(t *testing.T) {
	cloud := signer(t, batch.CloudSigner, 7)
	want := sampleAck()
	b, err := cloud.SealAck(want)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	got, err := batch.OpenAck(b, program, cloud.Public())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestOpenAckRejects(t *testing.T) {
	cloud := signer(t, batch.CloudSigner, 7)
	term := signer(t, "T-01", 1)
	good, err := cloud.SealAck(sampleAck())
	if err != nil {
		t.Fatal(err)
	}
	env, err := batch.ParseEnvelope(good, batch.MaxAckBytes)
	if err != nil {
		t.Fatal(err)
	}
	payload := env.Payload()
	resign := func(p []byte) []byte { return mustSealRaw(t, cloud, batch.TypeAck, cloud.KeyID(0), p) }
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"signed by a terminal", mustSealRaw(t, term, batch.TypeAck, term.KeyID(0), payload), batch.ErrKeyMismatch},
		{"a terminal key named cloud", mustSealRaw(t, signer(t, batch.CloudSigner, 1), batch.TypeAck, signer(t, batch.CloudSigner, 1).KeyID(0), payload), batch.ErrSignature},
		{"a batch where an ack belongs", mustSealRaw(t, cloud, batch.TypeBatch, cloud.KeyID(0), payload), batch.ErrContentType},
		{"unknown status", resign(tamper(t, payload, func(m map[any]any) { m[uint64(3)] = uint64(9) })), batch.ErrInvalid},
		{"result above watermark", resign(tamper(t, payload, func(m map[any]any) { m[uint64(4)] = uint64(101) })), batch.ErrInvalid},
		{"unknown field", resign(tamper(t, payload, func(m map[any]any) { m[uint64(12)] = "x" })), batch.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := batch.OpenAck(tc.data, program, cloud.Public())
			if !errors.Is(err, tc.want) || a != nil {
				t.Fatalf("got %v, %v; want an error wrapping %q", a, err, tc.want)
			}
		})
	}
}

func TestSnapshotsAndRulesRoundTrip(t *testing.T) {
	cloud := signer(t, batch.CloudSigner, 7)
	set := &batch.SnapshotSet{Store: "S-01", AsOf: t0, Snapshots: sampleAck().Snapshots, Next: "c2", RulesVersion: 4}
	b, err := cloud.SealSnapshots(set)
	if err != nil {
		t.Fatal(err)
	}
	got, err := batch.OpenSnapshots(b, program, cloud.Public())
	if err != nil {
		t.Fatalf("open snapshots: %v", err)
	}
	if !reflect.DeepEqual(got, set) {
		t.Errorf("snapshots: got %+v, want %+v", got, set)
	}
	if _, err := batch.OpenRules(b, program, cloud.Public()); !errors.Is(err, batch.ErrContentType) {
		t.Errorf("snapshots opened as rules: got %v, want ErrContentType", err)
	}

	rules := &loyalty.Rules{Version: 4, Program: program, Currency: "EUR", BasePoints: 1, BasePer: 100,
		CategoryMultipliers: map[string]loyalty.Multiplier{"dairy": 200, "bakery": 150},
		Campaigns:           []loyalty.Campaign{{ID: "c1", Name: "Double", Start: t0, End: t0.AddDate(0, 1, 0), Multiplier: 200}},
		Rewards:             []loyalty.Reward{{ID: "coffee", Name: "Coffee", Cost: 100}}}
	rb, err := cloud.SealRules(rules, t0)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := batch.OpenRules(rb, program, cloud.Public())
	if err != nil {
		t.Fatalf("open rules: %v", err)
	}
	wantHash, _ := rules.Hash()
	if doc.Hash != wantHash || !reflect.DeepEqual(&doc.Rules, rules) || !doc.Issued.Equal(t0) {
		t.Errorf("rules: got %+v (hash %s), want %+v (hash %s)", doc.Rules, doc.Hash, *rules, wantHash)
	}
	if _, err := batch.OpenRules(rb, "prog-other", cloud.Public()); !errors.Is(err, batch.ErrSignature) {
		t.Errorf("rules under another program: got %v, want ErrSignature", err)
	}
}
