package sqlstore

import (
	"testing"

	"github.com/tillpoint/tillpoint/loyalty"
)

// TestSeenCacheKeepsItsBoundAndOnlyWhatWasAdded defends the cache of
// cards seen at a store: it never holds more than its bound, and it marks
// a card seen only at the store it was added for.
func TestSeenCacheKeepsItsBoundAndOnlyWhatWasAdded(t *testing.T) {
	c := newSeenCache(100)
	var all []loyalty.CardHash
	for i := range 250 {
		all = append(all, loyalty.CardHash{byte(i), byte(i >> 8), 1})
	}
	c.add("s1", all)
	if n := len(c.pairs); n != 100 {
		t.Fatalf("cache holds %d pairs after 250 adds, want its bound 100", n)
	}
	cards := map[loyalty.CardHash]*card{}
	for _, h := range all {
		cards[h] = &card{}
	}
	c.mark("s1", cards)
	marked := 0
	for h, cd := range cards {
		if cd.seen {
			marked++
			if _, ok := c.pairs[seenPair{"s1", h}]; !ok {
				t.Errorf("card %x marked seen but not in the cache", h)
			}
		}
	}
	if marked != 100 {
		t.Errorf("%d cards marked seen at s1, want the 100 the cache holds", marked)
	}
	for _, cd := range cards {
		cd.seen = false
	}
	c.mark("s2", cards)
	for h, cd := range cards {
		if cd.seen {
			t.Errorf("card %x marked seen at s2, where it was never added", h)
		}
	}
}
