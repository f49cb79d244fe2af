package sqlstore

import (
	"sync"

	"github.com/tillpoint/tillpoint/loyalty"
)

// seenCacheSize bounds the pairs a Store's seenCache holds: about 20 MB.
const seenCacheSize = 1 << 18

// seenCache remembers (store, card) pairs known to be in card_stores, so
// that a batch neither reads them (PostgreSQL) nor inserts them again
// (SQLite, where the insert that finds the pair costs a search of the
// index each): most cards of a batch are regulars of its store. Pairs are
// only ever added to card_stores, and a pair enters the cache only once
// the transaction that wrote or read it has committed, so a pair in the
// cache is in the database. When full, a random pair makes room.
type seenCache struct {
	mu    sync.Mutex
	max   int
	pairs map[seenPair]struct{}
}

type seenPair struct {
	store string
	card  loyalty.CardHash
}

func newSeenCache(max int) *seenCache { return &seenCache{max: max, pairs: map[seenPair]struct{}{}} }

// mark sets seen on the cards known to be in card_stores for store.
func (c *seenCache) mark(store string, cards map[loyalty.CardHash]*card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, cd := range cards {
		if _, ok := c.pairs[seenPair{store, h}]; ok {
			cd.seen = true
		}
	}
}

// add records that cards are in card_stores for store: call it after the
// transaction that put them there, or read them there, has committed.
func (c *seenCache) add(store string, cards []loyalty.CardHash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range cards {
		for len(c.pairs) >= c.max {
			for p := range c.pairs { // map order is random: a random eviction
				delete(c.pairs, p)
				break
			}
		}
		c.pairs[seenPair{store, h}] = struct{}{}
	}
}
