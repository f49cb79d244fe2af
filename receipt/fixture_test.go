package receipt_test

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/receipt"
)

var update = flag.Bool("update", false, "rewrite the golden previews under testdata/ (review the diff before committing)")

// at is the checkout time of every scenario: a Saturday, 14:05 in Madrid.
var (
	madrid, _ = time.LoadLocation("Europe/Madrid")
	at        = time.Date(2026, 11, 28, 14, 5, 0, 0, time.UTC).In(madrid).Add(-time.Hour)
)

func testRules() *loyalty.Rules {
	return &loyalty.Rules{
		Version: 7, Program: "Club Verde", Currency: "EUR",
		BasePoints: 1, BasePer: 100,
		Campaigns: []loyalty.Campaign{
			{ID: "wknd", Name: "Double points weekend", Multiplier: 200,
				Start: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
			{ID: "coffee", Name: "Coffee bonus", Bonus: 10, Categories: []string{"coffee"},
				Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		},
		Tiers:   []loyalty.Tier{{Name: "Silver", Threshold: 0}, {Name: "Gold", Threshold: 2000, Multiplier: 150}},
		Rewards: []loyalty.Reward{{ID: "coffee", Name: "Free coffee", Cost: 150}},
	}
}

func testBasket() loyalty.Basket {
	return loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{
		{SKU: "4006381333931", Category: "grocery", Quantity: 1, Amount: 3850},
		{SKU: "COF-250", Category: "coffee", Quantity: 1, Amount: 350},
	}}
}

func opID(t testing.TB, seed byte) loyalty.OpID {
	t.Helper()
	id, err := loyalty.NewOpID(at, bytes.NewReader(bytes.Repeat([]byte{seed}, 16)))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func terminalKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

const cardNumber = "2012345678903"

// scenario is one checkout to print.
type scenario struct {
	name string
	in   receipt.Input
}

// scenarios returns the checkouts the tests print: a member earning and
// redeeming online, the same offline, a purchase without a card, and a
// member earning in Spanish.
func scenarios(t testing.TB) []scenario {
	t.Helper()
	rules := testRules()
	card, err := loyalty.NewCardToken(loyalty.CardBarcode, cardNumber)
	if err != nil {
		t.Fatal(err)
	}
	hash := card.Hash(loyalty.CardKey("k"))
	basket := testBasket()
	before := loyalty.Snapshot{Card: hash, Member: "M-000123", Balance: 1300, Tier: "Silver"}
	points, reasons, err := rules.Earn(basket, before, at)
	if err != nil {
		t.Fatal(err)
	}
	redeem := loyalty.Op{ID: opID(t, 1), Kind: loyalty.OpRedeem, Terminal: "T03", Store: "S012", WallTime: at,
		Card: hash, Points: -150, Reward: "coffee", Receipt: "S012-T03-000123"}
	earn := loyalty.Op{ID: opID(t, 2), Kind: loyalty.OpEarn, Terminal: "T03", Store: "S012", WallTime: at,
		Card: hash, Points: points, Basket: &basket, Receipt: "S012-T03-000123", RulesVersion: rules.Version}
	after := before
	after.Balance = before.Balance - 150 + points
	after.NextTier, after.ToNextTier = "Gold", 2000-after.Balance
	after.AsOf = at
	after.Expiring = []loyalty.ExpiringPoints{
		{Points: 50, At: time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)},
		{Points: 80, At: time.Date(2027, 6, 30, 22, 0, 0, 0, time.UTC)}, // beyond 60 days: not shown
	}

	offlineSnap := after
	offlineSnap.AsOf = at.Add(-17 * time.Minute) // "as of 13:48"
	offRedeem, offEarn := redeem, earn
	offRedeem.Offline, offEarn.Offline = true, true

	cardless := earn
	cardless.ID, cardless.Card = opID(t, 3), loyalty.CardHash{}
	cardless.Receipt = "S012-T03-000124"

	es, err := receipt.DefaultLayout("Club Verde", "es")
	if err != nil {
		t.Fatal(err)
	}
	en, err := receipt.DefaultLayout("Club Verde", "en")
	if err != nil {
		t.Fatal(err)
	}
	return []scenario{
		{"member", receipt.Input{Ops: []loyalty.Op{redeem, earn}, Reasons: reasons, Card: card, Member: &after,
			Rules: rules, Location: madrid, Layout: en}},
		{"offline", receipt.Input{Ops: []loyalty.Op{offRedeem, offEarn}, Reasons: reasons, Card: card, Member: &offlineSnap,
			Rules: rules, Location: madrid, Layout: en}},
		{"cardless", receipt.Input{Ops: []loyalty.Op{cardless}, Reasons: reasons, Rules: rules, Location: madrid,
			TerminalKey: terminalKey(), Layout: en}},
		{"member_es", receipt.Input{Ops: []loyalty.Op{redeem, earn}, Reasons: reasons, Card: card, Member: &after,
			Rules: rules, Location: madrid, Layout: es}},
	}
}

func build(t testing.TB, in receipt.Input) receipt.Block {
	t.Helper()
	b, err := receipt.Build(in)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return b
}

// golden compares got with testdata/<name>, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it, then review it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs:\ngot\n%s\nwant\n%s", path, got, want)
	}
}
