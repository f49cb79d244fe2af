package loyalty_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

var (
	campaignStart = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	campaignEnd   = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	inCampaign    = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	afterCampaign = campaignEnd
)

// testRules is a program with every kind of rule: 1 point per 1.00 EUR,
// gift cards and tobacco excluded, coffee x1.5, a double-points weekend on
// everything, a coffee bonus of 10 for spending 5.00 on coffee, and tiers.
func testRules() *loyalty.Rules {
	return &loyalty.Rules{
		Version: 7, Program: "acme", Currency: "EUR",
		BasePoints: 1, BasePer: 100,
		Excluded:            []string{"giftcard", "tobacco"},
		CategoryMultipliers: map[string]loyalty.Multiplier{"coffee": 150, "bakery": 100},
		Campaigns: []loyalty.Campaign{
			{ID: "dbl", Name: "Double points weekend", Start: campaignStart, End: campaignEnd, Multiplier: 200},
			{ID: "cof", Name: "Coffee bonus", Start: campaignStart, End: campaignEnd, Bonus: 10, Categories: []string{"coffee"}, MinSpend: 500},
		},
		Tiers: []loyalty.Tier{
			{Name: "Silver", Threshold: 0},
			{Name: "Gold", Threshold: 1000, Multiplier: 125},
			{Name: "Platinum", Threshold: 5000, Multiplier: 200},
		},
		Rewards: []loyalty.Reward{{ID: "coffee", Name: "Free coffee", Cost: 150}},
	}
}

func basket(lines ...loyalty.Line) loyalty.Basket {
	return loyalty.Basket{Currency: "EUR", Lines: lines}
}

func line(sku, cat string, amount int64) loyalty.Line {
	return loyalty.Line{SKU: sku, Category: cat, Quantity: 1, Amount: amount}
}

// TestEarn defends invariant 5's foundation: the same basket, rules and time
// give the same points and reasons, rule by rule and in combination.
func TestEarn(t *testing.T) {
	tests := []struct {
		name    string
		rules   func(*loyalty.Rules)
		basket  loyalty.Basket
		tier    string
		at      time.Time
		want    loyalty.Points
		reasons map[string]loyalty.Points // code/ref → points
	}{
		{name: "base rate floors per basket", basket: basket(line("a", "food", 199), line("b", "food", 250)), at: afterCampaign,
			want: 4, reasons: map[string]loyalty.Points{"base": 4}},
		{name: "base rate over the basket, not per line", basket: basket(line("a", "food", 150), line("b", "food", 150)), at: afterCampaign,
			want: 3, reasons: map[string]loyalty.Points{"base": 3}},
		{name: "excluded categories earn nothing", basket: basket(line("g", "giftcard", 5000), line("t", "tobacco", 900), line("a", "food", 100)), at: afterCampaign,
			want: 1, reasons: map[string]loyalty.Points{"base": 1}},
		{name: "only excluded lines earn zero", basket: basket(line("g", "giftcard", 5000)), at: afterCampaign, want: 0},
		{name: "returns make the basket earn zero, never negative", basket: basket(line("a", "food", 100), line("r", "food", -500)), at: afterCampaign, want: 0},
		{name: "category multiplier adds the extra half on coffee", basket: basket(line("c", "coffee", 400), line("a", "food", 100)), at: afterCampaign,
			want: 7, reasons: map[string]loyalty.Points{"base": 5, "category/coffee": 2}},
		{name: "a x1 category multiplier adds nothing", basket: basket(line("b", "bakery", 300)), at: afterCampaign,
			want: 3, reasons: map[string]loyalty.Points{"base": 3}},
		{name: "campaign multiplier inside its window", basket: basket(line("a", "food", 4200)), at: inCampaign,
			want: 84, reasons: map[string]loyalty.Points{"base": 42, "campaign/dbl": 42}},
		{name: "campaign ends exclusive of its end time", basket: basket(line("a", "food", 4200)), at: campaignEnd,
			want: 42, reasons: map[string]loyalty.Points{"base": 42}},
		{name: "campaign not yet started", basket: basket(line("a", "food", 4200)), at: campaignStart.Add(-time.Second),
			want: 42, reasons: map[string]loyalty.Points{"base": 42}},
		{name: "fixed bonus needs its minimum spend on covered lines", basket: basket(line("c", "coffee", 499), line("a", "food", 5000)), at: inCampaign,
			want: 54 + 54 + 2, reasons: map[string]loyalty.Points{"base": 54, "category/coffee": 2, "campaign/dbl": 54}},
		{name: "fixed bonus with minimum spend met", basket: basket(line("c", "coffee", 500)), at: inCampaign,
			want: 5 + 2 + 5 + 10, reasons: map[string]loyalty.Points{"base": 5, "category/coffee": 2, "campaign/dbl": 5, "bonus/cof": 10}},
		{name: "campaign filtered by SKU", rules: func(r *loyalty.Rules) {
			r.Campaigns = []loyalty.Campaign{{ID: "sku", Name: "Brand x3", Start: campaignStart, End: campaignEnd, Multiplier: 300, SKUs: []string{"brand"}}}
		}, basket: basket(line("brand", "food", 1000), line("other", "food", 1000)), at: inCampaign,
			want: 20 + 20, reasons: map[string]loyalty.Points{"base": 20, "campaign/sku": 20}},
		{name: "campaign does not cover excluded lines", basket: basket(line("g", "giftcard", 10000), line("a", "food", 100)), at: inCampaign,
			want: 2, reasons: map[string]loyalty.Points{"base": 1, "campaign/dbl": 1}},
		{name: "tier multiplier scales the base only", basket: basket(line("a", "food", 1000)), tier: "Gold", at: inCampaign,
			want: 10 + 10 + 2, reasons: map[string]loyalty.Points{"base": 10, "campaign/dbl": 10, "tier/Gold": 2}},
		{name: "tier without multiplier adds nothing", basket: basket(line("a", "food", 1000)), tier: "Silver", at: afterCampaign,
			want: 10, reasons: map[string]loyalty.Points{"base": 10}},
		{name: "unknown tier adds nothing", basket: basket(line("a", "food", 1000)), tier: "Diamond", at: afterCampaign, want: 10},
		{name: "cap per basket applies after every other rule", rules: func(r *loyalty.Rules) { r.CapPerBasket = 50 },
			basket: basket(line("c", "coffee", 5000)), tier: "Platinum", at: inCampaign,
			want: 50, reasons: map[string]loyalty.Points{"base": 50, "category/coffee": 25, "campaign/dbl": 50, "bonus/cof": 10, "tier/Platinum": 50, "cap": -135}},
		{name: "fractional base rate: 3 points per 2.00", rules: func(r *loyalty.Rules) { r.BasePoints, r.BasePer = 3, 200 },
			basket: basket(line("a", "food", 333)), at: afterCampaign, want: 4, reasons: map[string]loyalty.Points{"base": 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRules()
			if tt.rules != nil {
				tt.rules(r)
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("rules invalid: %v", err)
			}
			got, reasons, err := r.Earn(tt.basket, loyalty.Snapshot{Tier: tt.tier}, tt.at)
			if err != nil {
				t.Fatalf("Earn: %v", err)
			}
			if got != tt.want {
				t.Errorf("points: got %d, want %d (reasons %+v)", got, tt.want, reasons)
			}
			var sum loyalty.Points
			gotReasons := map[string]loyalty.Points{}
			for _, r := range reasons {
				key := r.Code
				if r.Ref != "" {
					key += "/" + r.Ref
				}
				gotReasons[key] = r.Points
				sum += r.Points
				if r.Label == "" {
					t.Errorf("reason %s has no label", key)
				}
			}
			if sum != got {
				t.Errorf("reasons sum to %d, total is %d: a receipt would not add up", sum, got)
			}
			if tt.reasons != nil && !equalMaps(gotReasons, tt.reasons) {
				t.Errorf("reasons: got %v, want %v", gotReasons, tt.reasons)
			}
		})
	}
}

// TestEarnIndependentOfLineOrder defends invariant 5: agent and cloud may see
// lines in another order and must still agree.
func TestEarnIndependentOfLineOrder(t *testing.T) {
	r := testRules()
	a := basket(line("c", "coffee", 333), line("a", "food", 777), line("b", "bakery", 151), line("g", "giftcard", 999))
	b := basket(a.Lines[3], a.Lines[1], a.Lines[2], a.Lines[0])
	p1, _, err1 := r.Earn(a, loyalty.Snapshot{Tier: "Gold"}, inCampaign)
	p2, _, err2 := r.Earn(b, loyalty.Snapshot{Tier: "Gold"}, inCampaign)
	if err1 != nil || err2 != nil || p1 != p2 {
		t.Fatalf("got %d (%v) and %d (%v) for the same lines in another order", p1, err1, p2, err2)
	}
}

func TestEarnRejectsBadInput(t *testing.T) {
	r := testRules()
	tests := []struct {
		name string
		b    loyalty.Basket
		want error
	}{
		{"other currency", loyalty.Basket{Currency: "USD", Lines: []loyalty.Line{line("a", "food", 100)}}, loyalty.ErrInvalidBasket},
		{"no lines", basket(), loyalty.ErrInvalidBasket},
		{"zero quantity", basket(loyalty.Line{SKU: "a", Amount: 100}), loyalty.ErrInvalidBasket},
		{"empty SKU", basket(line("", "food", 100)), loyalty.ErrInvalidBasket},
		{"absurd amount", basket(line("a", "food", 1<<50)), loyalty.ErrInvalidBasket},
		{"bad currency", loyalty.Basket{Currency: "eur", Lines: []loyalty.Line{line("a", "food", 100)}}, loyalty.ErrInvalidBasket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := r.Earn(tt.b, loyalty.Snapshot{}, inCampaign); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestEarnBeyondMaxOpPointsIsAnError: rules published before Validate bounded
// them, or valid rules on a huge basket, may earn more than MaxOpPoints, or
// more than an int64 holds: Earn says so, never a wrapped or dropped
// figure. A cap that brings the total within the bound is kept.
func TestEarnBeyondMaxOpPointsIsAnError(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*loyalty.Rules)
		b      loyalty.Basket
		want   loyalty.Points // 0: ErrOverflow
	}{
		{"bonus beyond MaxOpPoints", func(r *loyalty.Rules) { r.Campaigns[1].Bonus = 3 << 61 }, basket(line("c", "coffee", 1000)), 0},
		{"bonuses that wrap int64", func(r *loyalty.Rules) { r.Campaigns[0].Bonus, r.Campaigns[1].Bonus = 3<<61, 3<<61 }, basket(line("c", "coffee", 1000)), 0},
		{"total beyond MaxOpPoints", func(r *loyalty.Rules) { r.Campaigns[1].Bonus = loyalty.MaxOpPoints }, basket(line("c", "coffee", 1000)), 0},
		{"base rate on a huge basket", func(r *loyalty.Rules) { r.BasePoints, r.BasePer = loyalty.MaxOpPoints, 1 }, basket(line("a", "food", 1<<40)), 0},
		{"capped within MaxOpPoints", func(r *loyalty.Rules) { r.Campaigns[1].Bonus, r.CapPerBasket = loyalty.MaxOpPoints, 100 }, basket(line("c", "coffee", 1000)), 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRules()
			tt.mutate(r)
			got, _, err := r.Earn(tt.b, loyalty.Snapshot{Tier: "Platinum"}, inCampaign)
			if tt.want == 0 {
				if !errors.Is(err, loyalty.ErrOverflow) {
					t.Errorf("got %d points, %v; want ErrOverflow", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d points, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestRulesValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*loyalty.Rules)
	}{
		{"version zero", func(r *loyalty.Rules) { r.Version = 0 }},
		{"bad currency", func(r *loyalty.Rules) { r.Currency = "EURO" }},
		{"zero base per", func(r *loyalty.Rules) { r.BasePer = 0 }},
		{"unknown rounding", func(r *loyalty.Rules) { r.Rounding = "half-up" }},
		{"campaign ends before it starts", func(r *loyalty.Rules) { r.Campaigns[0].End = r.Campaigns[0].Start }},
		{"tiers out of order", func(r *loyalty.Rules) { r.Tiers[1].Threshold = 0 }},
		{"duplicate reward", func(r *loyalty.Rules) { r.Rewards = append(r.Rewards, r.Rewards[0]) }},
		{"free reward", func(r *loyalty.Rules) { r.Rewards[0].Cost = 0 }},
		{"negative cap", func(r *loyalty.Rules) { r.CapPerBasket = -1 }},
		{"base points beyond MaxOpPoints", func(r *loyalty.Rules) { r.BasePoints = loyalty.MaxOpPoints + 1 }},
		{"cap beyond MaxOpPoints", func(r *loyalty.Rules) { r.CapPerBasket = loyalty.MaxOpPoints + 1 }},
		{"bonus beyond MaxOpPoints", func(r *loyalty.Rules) { r.Campaigns[1].Bonus = 3 << 61 }},
		{"bonuses beyond MaxOpPoints together", func(r *loyalty.Rules) { r.Campaigns[0].Bonus, r.Campaigns[1].Bonus = loyalty.MaxOpPoints, 1 }},
		{"campaign multiplier beyond MaxMultiplier", func(r *loyalty.Rules) { r.Campaigns[0].Multiplier = loyalty.MaxMultiplier + 1 }},
		{"category multiplier beyond MaxMultiplier", func(r *loyalty.Rules) { r.CategoryMultipliers["coffee"] = loyalty.MaxMultiplier + 1 }},
		{"tier threshold beyond MaxOpPoints", func(r *loyalty.Rules) { r.Tiers[2].Threshold = loyalty.MaxOpPoints + 1 }},
		{"reward cost beyond MaxOpPoints", func(r *loyalty.Rules) { r.Rewards[0].Cost = loyalty.MaxOpPoints + 1 }},
	}
	if err := testRules().Validate(); err != nil {
		t.Fatalf("valid rules rejected: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRules()
			tt.mutate(r)
			if err := r.Validate(); !errors.Is(err, loyalty.ErrInvalidRules) {
				t.Errorf("got %v, want ErrInvalidRules", err)
			}
		})
	}
}

// TestRulesHashIsContentBased: the hash follows the content, not the map
// order or the time zone the campaign times were written in.
func TestRulesHashIsContentBased(t *testing.T) {
	a, b := testRules(), testRules()
	paris := time.FixedZone("CET", 3600)
	b.Campaigns[0].Start = b.Campaigns[0].Start.In(paris)
	ha, err := a.Hash()
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := b.Hash()
	if ha != hb {
		t.Errorf("same rules, different hashes: %s vs %s", ha, hb)
	}
	b.CategoryMultipliers["coffee"] = 151
	if hc, _ := b.Hash(); hc == ha {
		t.Error("changed rules kept the same hash")
	}
	js, _ := a.Canonical()
	var back loyalty.Rules
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("canonical JSON does not read back: %v", err)
	}
	if hback, _ := back.Hash(); hback != ha {
		t.Errorf("hash after a JSON round trip: got %s, want %s", hback, ha)
	}
}

func TestTierFor(t *testing.T) {
	r := testRules()
	tests := []struct {
		q          loyalty.Points
		tier, next string
		toNext     loyalty.Points
	}{
		{0, "Silver", "Gold", 1000},
		{880, "Silver", "Gold", 120},
		{1000, "Gold", "Platinum", 4000},
		{9000, "Platinum", "", 0},
	}
	for _, tt := range tests {
		tier, next, to := r.TierFor(tt.q)
		if tier != tt.tier || next != tt.next || to != tt.toNext {
			t.Errorf("TierFor(%d): got %s, %s, %d; want %s, %s, %d", tt.q, tier, next, to, tt.tier, tt.next, tt.toNext)
		}
	}
}

func TestParseMultiplier(t *testing.T) {
	good := map[string]loyalty.Multiplier{"1": 100, "2": 200, "1.5": 150, "1.25": 125, "0.5": 50, "10": 1000}
	for s, want := range good {
		got, err := loyalty.ParseMultiplier(s)
		if err != nil || got != want {
			t.Errorf("ParseMultiplier(%q): got %d, %v; want %d", s, got, err, want)
		}
		if got.String() != s {
			t.Errorf("String of %q: got %q", s, got.String())
		}
	}
	for _, s := range []string{"", "x2", "1.", ".5", "1.255", "-1", "1e2", "1,5"} {
		if _, err := loyalty.ParseMultiplier(s); err == nil {
			t.Errorf("ParseMultiplier(%q) accepted a malformed multiplier", s)
		}
	}
}

func equalMaps(a, b map[string]loyalty.Points) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
