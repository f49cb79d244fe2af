package journal

import (
	"sync"

	"github.com/tillpoint/tillpoint/loyalty"
)

// viewCacheSize bounds how many cards' views stay in memory; past it an
// arbitrary entry makes room (a miss costs one read transaction).
const viewCacheSize = 4096

// viewCache keeps the local views of recently read cards in memory, so a
// checkout reads its member without a SQLite round trip. The database stays
// the source of truth: the cache starts empty at Open and is filled from
// read transactions.
//
// The writer keeps it coherent. Every change a transaction makes to what a
// view shows is recorded as a touch (an op's points, or an invalidation)
// and applied once the transaction has committed. Fills must not race with
// that: gen is odd while a commit is in flight, and a view read from the
// database is kept only when no commit began or ended since before the read
// started, so a fill never holds a state the touches then count a second
// time. This assumes the Journal is the database's only writer, which the
// package already requires (one writer goroutine, continuity tokens).
type viewCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[loyalty.CardHash]View
}

// viewTouch is one change to the cached views, applied after its commit.
type viewTouch struct {
	card   loyalty.CardHash
	points loyalty.Points // an op of the card was appended with these points
	drop   bool           // the card's view changed otherwise: read it again
	all    bool           // every view may have changed (an acknowledgement)
}

func newViewCache() *viewCache { return &viewCache{m: map[loyalty.CardHash]View{}} }

// get returns the cached view of card, or the generation to fill it at.
func (c *viewCache) get(card loyalty.CardHash) (v View, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok = c.m[card]
	if ok {
		v.Snapshot.Expiring = append([]loyalty.ExpiringPoints(nil), v.Snapshot.Expiring...)
	}
	return v, c.gen, ok
}

// fill keeps v, read from the database after get returned gen, unless a
// commit began or ended meanwhile (or was in flight at get).
func (c *viewCache) fill(v View, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || gen%2 == 1 {
		return
	}
	if len(c.m) >= viewCacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	v.Snapshot.Expiring = append([]loyalty.ExpiringPoints(nil), v.Snapshot.Expiring...)
	c.m[v.Card] = v
}

// begin marks a commit in flight: fills started before it are dropped.
func (c *viewCache) begin() {
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
}

// end applies the touches of a committed transaction; committed false (a
// commit whose outcome is unknown) forgets every view.
func (c *viewCache) end(touches []viewTouch, committed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if !committed {
		clear(c.m)
		return
	}
	for _, t := range touches {
		switch {
		case t.all:
			clear(c.m)
		case t.drop:
			delete(c.m, t.card)
		default:
			v, ok := c.m[t.card]
			if !ok || !v.Known {
				continue // an unknown card stays unknown until a snapshot or an enrollment
			}
			bal, err := v.Balance.Add(t.points)
			if err != nil {
				delete(c.m, t.card)
				continue
			}
			v.Unacked += t.points
			v.UnackedOps++
			v.Balance = bal
			c.m[t.card] = v
		}
	}
}
