package loyalty

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// Rules are one version of a program's earn rules, its tiers and its
// rewards. They are data: the cloud publishes them, terminals cache them,
// and both evaluate Earn with the version an op names (invariant 5).
type Rules struct {
	// Version increases with every published change; an op records it.
	Version  uint32   `json:"version"`
	Program  string   `json:"program"`
	Currency Currency `json:"currency"`
	// Base is the base rate: BasePoints points per BasePer minor units
	// (1 point per 100 cents is {1, 100}).
	BasePoints Points `json:"base_points"`
	BasePer    int64  `json:"base_per"`
	// Rounding is how fractions of a point go; "floor" (per basket) is the
	// only mode so far, and the default.
	Rounding string `json:"rounding,omitempty"`
	// Excluded categories earn nothing (gift cards, tobacco...).
	Excluded []string `json:"excluded,omitempty"`
	// CategoryMultipliers scale the base points of a category's lines.
	CategoryMultipliers map[string]Multiplier `json:"category_multipliers,omitempty"`
	Campaigns           []Campaign            `json:"campaigns,omitempty"`
	// Tiers in ascending order of Threshold; a tier's multiplier scales
	// the base points of its members.
	Tiers []Tier `json:"tiers,omitempty"`
	// CapPerBasket bounds the points one basket earns; 0 is no cap.
	CapPerBasket Points   `json:"cap_per_basket,omitempty"`
	Rewards      []Reward `json:"rewards,omitempty"`
	// ExpiryMonths is how long earned points live; 0 is forever.
	ExpiryMonths int `json:"expiry_months,omitempty"`
}

// Campaign is a time-boxed promotion: a multiplier on the base points of the
// lines it covers, or a fixed bonus, or both.
type Campaign struct {
	ID    string    `json:"id"`
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Multiplier scales the base points of the covered lines (x2 = 2).
	// Zero or 1 means no multiplier.
	Multiplier Multiplier `json:"multiplier,omitempty"`
	// Bonus is a fixed number of points for a qualifying basket.
	Bonus Points `json:"bonus,omitempty"`
	// Categories and SKUs restrict the campaign to some lines; both empty
	// covers every eligible line.
	Categories []string `json:"categories,omitempty"`
	SKUs       []string `json:"skus,omitempty"`
	// MinSpend is the least the covered lines must add up to, in minor units.
	MinSpend int64 `json:"min_spend,omitempty"`
}

// Tier is a membership level reached at a number of qualifying points.
type Tier struct {
	Name       string     `json:"name"`
	Threshold  Points     `json:"threshold"`
	Multiplier Multiplier `json:"multiplier,omitempty"`
}

// Reward is something points buy.
type Reward struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Cost Points `json:"cost"`
}

// Reason explains a part of an earn, for the receipt and for audits.
type Reason struct {
	// Code is stable: base, category, campaign, bonus, tier, cap.
	Code string `json:"code"`
	// Ref names the rule: a category, a campaign ID or a tier.
	Ref    string `json:"ref,omitempty"`
	Label  string `json:"label"`
	Points Points `json:"points"`
}

// ErrInvalidRules reports rules that cannot be published or evaluated.
var ErrInvalidRules = errors.New("loyalty: invalid rules")

// MaxMultiplier bounds every multiplier of valid rules (x1000).
const MaxMultiplier = 1000 * One

// Validate checks that the rules can be evaluated.
func (r *Rules) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: version %d: %s", ErrInvalidRules, r.Version, fmt.Sprintf(format, args...))
	}
	if r.Version == 0 {
		return bad("version must be at least 1")
	}
	if err := r.Currency.Validate(); err != nil {
		return bad("%v", err)
	}
	if r.BasePoints < 0 || r.BasePer <= 0 {
		return bad("base rate needs base_points >= 0 and base_per > 0")
	}
	if r.Rounding != "" && r.Rounding != "floor" {
		return bad("rounding %q: only \"floor\" is supported", r.Rounding)
	}
	if r.CapPerBasket < 0 || r.ExpiryMonths < 0 {
		return bad("cap_per_basket and expiry_months cannot be negative")
	}
	if r.BasePoints > MaxOpPoints || r.CapPerBasket > MaxOpPoints {
		return bad("base_points and cap_per_basket can be at most %d", MaxOpPoints)
	}
	for c, m := range r.CategoryMultipliers {
		if m < 0 || m > MaxMultiplier {
			return bad("category %q: multiplier must be 0 to %s", c, MaxMultiplier)
		}
	}
	var bonuses Points // every campaign's bonus, were they all to run at once
	for _, c := range r.Campaigns {
		if c.ID == "" || !c.End.After(c.Start) || c.Multiplier < 0 || c.Bonus < 0 || c.MinSpend < 0 {
			return bad("campaign %q needs an id, an end after its start and non-negative values", c.ID)
		}
		if c.Multiplier > MaxMultiplier || c.Bonus > MaxOpPoints-bonuses {
			return bad("campaign %q: multiplier at most %s, and the bonuses of all campaigns at most %d together", c.ID, MaxMultiplier, MaxOpPoints)
		}
		bonuses += c.Bonus
	}
	for i, t := range r.Tiers {
		if t.Name == "" || t.Threshold < 0 || t.Multiplier < 0 {
			return bad("tier %d needs a name and non-negative threshold and multiplier", i+1)
		}
		if t.Threshold > MaxOpPoints || t.Multiplier > MaxMultiplier {
			return bad("tier %d: threshold at most %d and multiplier at most %s", i+1, MaxOpPoints, MaxMultiplier)
		}
		if i > 0 && t.Threshold <= r.Tiers[i-1].Threshold {
			return bad("tiers must be in ascending order of threshold")
		}
	}
	seen := map[string]bool{}
	for _, w := range r.Rewards {
		if w.ID == "" || w.Cost <= 0 || w.Cost > MaxOpPoints || seen[w.ID] {
			return bad("reward %q needs a unique id and a cost of 1 to %d", w.ID, MaxOpPoints)
		}
		seen[w.ID] = true
	}
	return nil
}

// Canonical returns the rules as canonical JSON: fields in declaration
// order, map keys sorted, times in UTC. Hash and signatures are over these bytes.
func (r *Rules) Canonical() ([]byte, error) {
	c := *r
	c.Campaigns = slices.Clone(r.Campaigns)
	for i := range c.Campaigns {
		c.Campaigns[i].Start = c.Campaigns[i].Start.UTC()
		c.Campaigns[i].End = c.Campaigns[i].End.UTC()
	}
	return json.Marshal(&c)
}

// Hash returns the hex SHA-256 of the canonical form: two terminals holding
// the same version with different hashes hold different rules.
func (r *Rules) Hash() (string, error) {
	b, err := r.Canonical()
	if err != nil {
		return "", fmt.Errorf("hash rules: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Reward returns the reward with the given ID.
func (r *Rules) Reward(id string) (Reward, bool) {
	for _, w := range r.Rewards {
		if w.ID == id {
			return w, true
		}
	}
	return Reward{}, false
}

// TierFor returns the tier reached with the given qualifying points, and the
// next tier with the points still missing; empty names where there is none.
func (r *Rules) TierFor(qualifying Points) (tier string, next string, toNext Points) {
	for _, t := range r.Tiers {
		if qualifying >= t.Threshold {
			tier = t.Name
			continue
		}
		return tier, t.Name, t.Threshold - qualifying
	}
	return tier, "", 0
}

// Earn computes the points a basket earns for a member (whose tier is
// taken from the snapshot; the zero Snapshot is a member without tier) at
// time at, with the reasons that make up the total. Every component is
// floored over the whole basket, so the result never depends on line order.
// A component or a total beyond MaxOpPoints is an error wrapping ErrOverflow
// (a component so even under a cap): never a wrapped or dropped figure.
// Valid rules bound each of their figures, but not what a large basket
// earns at their rates; rules published before those bounds bound nothing.
func (r *Rules) Earn(b Basket, m Snapshot, at time.Time) (Points, []Reason, error) {
	if err := b.Validate(); err != nil {
		return 0, nil, err
	}
	if b.Currency != r.Currency {
		return 0, nil, fmt.Errorf("%w: basket in %s, rules %d earn on %s", ErrInvalidBasket, b.Currency, r.Version, r.Currency)
	}
	eligible := make([]Line, 0, len(b.Lines))
	var eligibleTotal int64
	for _, l := range b.Lines {
		if !slices.Contains(r.Excluded, l.Category) {
			eligible = append(eligible, l)
			eligibleTotal += l.Amount
		}
	}
	if eligibleTotal <= 0 {
		return 0, nil, nil
	}

	var reasons []Reason
	var total Points
	var overflow error
	// add counts a component. Each is at most MaxOpPoints, so the total cannot
	// wrap before Add reports it.
	add := func(code, ref, label string, p Points) {
		if p <= 0 || overflow != nil {
			return
		}
		if p > MaxOpPoints {
			overflow = fmt.Errorf("%w: rules %d: %s %s earns more than %d points on this basket", ErrOverflow, r.Version, code, ref, MaxOpPoints)
			return
		}
		reasons = append(reasons, Reason{Code: code, Ref: ref, Label: label, Points: p})
		total, overflow = total.Add(p)
	}
	// points is n, or beyond MaxOpPoints (which add refuses) when n does not fit.
	points := func(n *big.Int) Points {
		if !n.IsInt64() {
			return MaxOpPoints + 1
		}
		return Points(n.Int64())
	}
	// pointsFor is floor(amount * base rate * (mult-1)): the extra that a
	// multiplier gives over the base. big.Int keeps it exact for any input.
	pointsFor := func(amount int64, m Multiplier) Points {
		if amount <= 0 || m <= 0 {
			return 0
		}
		n := new(big.Int).Mul(big.NewInt(amount), big.NewInt(int64(r.BasePoints)))
		n.Mul(n, big.NewInt(int64(m)))
		return points(n.Quo(n, new(big.Int).Mul(big.NewInt(r.BasePer), big.NewInt(100))))
	}

	base := pointsFor(eligibleTotal, One)
	add("base", "", fmt.Sprintf("Base %d pt / %s", r.BasePoints, FormatAmount(r.BasePer, r.Currency.MinorUnits())), base)

	for _, cat := range sortedKeys(r.CategoryMultipliers) {
		mult := r.CategoryMultipliers[cat]
		if mult <= One {
			continue
		}
		var amount int64
		for _, l := range eligible {
			if l.Category == cat {
				amount += l.Amount
			}
		}
		add("category", cat, fmt.Sprintf("%s x%s", cat, mult), pointsFor(amount, mult-One))
	}

	for _, c := range r.Campaigns {
		if at.Before(c.Start) || !at.Before(c.End) {
			continue
		}
		var amount int64
		var covered bool
		for _, l := range eligible {
			if c.covers(l) {
				amount += l.Amount
				covered = true
			}
		}
		if !covered || amount <= 0 || amount < c.MinSpend {
			continue
		}
		if c.Multiplier > One {
			add("campaign", c.ID, fmt.Sprintf("%s x%s", c.Name, c.Multiplier), pointsFor(amount, c.Multiplier-One))
		}
		add("bonus", c.ID, c.Name, c.Bonus)
	}

	for _, t := range r.Tiers {
		if t.Name == m.Tier && m.Tier != "" && t.Multiplier > One {
			extra := points(new(big.Int).Quo(new(big.Int).Mul(big.NewInt(int64(base)), big.NewInt(int64(t.Multiplier-One))), big.NewInt(100)))
			add("tier", t.Name, fmt.Sprintf("%s tier x%s", t.Name, t.Multiplier), extra)
		}
	}

	if overflow != nil {
		return 0, nil, overflow
	}
	if r.CapPerBasket > 0 && total > r.CapPerBasket {
		reasons = append(reasons, Reason{Code: "cap", Label: fmt.Sprintf("Capped at %d per basket", r.CapPerBasket), Points: r.CapPerBasket - total})
		total = r.CapPerBasket
	}
	if total > MaxOpPoints {
		return 0, nil, fmt.Errorf("%w: rules %d earn %d points on this basket, more than %d", ErrOverflow, r.Version, total, MaxOpPoints)
	}
	return total, reasons, nil
}

func (c Campaign) covers(l Line) bool {
	if len(c.Categories) == 0 && len(c.SKUs) == 0 {
		return true
	}
	return slices.Contains(c.Categories, l.Category) || slices.Contains(c.SKUs, l.SKU)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
