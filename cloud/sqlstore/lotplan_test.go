package sqlstore_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Sizes of the member-heavy ledger: members each with one card, held
// cards (card owners), and rounds of three earns and a redeem that closes
// two lots' worth.
const (
	planMembers = 2000
	planHeld    = 500
	planRounds  = 3
	planBatch   = 1000
)

// memberLedger fills s with a ledger whose owners are mostly members with
// more closed lots than open ones: planMembers cards enrolled first, then
// planRounds rounds in which every card, member's or held, earns three lots
// of 10 points and redeems 20 (soonest first), leaving each owner 6 closed
// lots and 3 open. Earns stay under Silver's 100 qualifying points, so
// every lot holds 10. It returns the member and the card owners; on
// PostgreSQL the lots are analyzed, as autovacuum would have.
func memberLedger(t testing.TB, s *sqlstore.Store) (members, cards []string) {
	t.Helper()
	ctx := context.Background()
	if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatal(err)
	}
	tl := storetest.NewTill(t, s, "t1", "s1")
	var ops []loyalty.Op
	send := func() {
		for len(ops) > 0 {
			n := min(planBatch, len(ops))
			tl.Send(t, s, ops[:n]...)
			ops = ops[n:]
		}
	}
	all := make([]loyalty.CardHash, 0, planMembers+planHeld)
	for i := range planMembers + planHeld {
		c := storetest.Card(i)
		all = append(all, c)
		if i < planMembers {
			m := loyalty.MemberID(fmt.Sprintf("member-%d", i))
			ops = append(ops, tl.Enroll(c, m))
			members = append(members, string(cloud.MemberOwner(m)))
		} else {
			cards = append(cards, string(cloud.CardOwner(c)))
		}
	}
	send()
	for range planRounds {
		for _, c := range all {
			ops = append(ops, tl.Earn(c, 1000, 10), tl.Earn(c, 1000, 10), tl.Earn(c, 1000, 10))
		}
		send()
		for _, c := range all {
			ops = append(ops, tl.Redeem(c, 20, false))
		}
		send()
	}
	if s.Dialect() == sqlstore.Postgres {
		for _, q := range []string{closedHistory, "ANALYZE lots"} {
			if _, err := s.DB().ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	return members, cards
}

// planHistory is how many more closed lots each member gets on PostgreSQL,
// whose plans weigh the table's size: years of earns spent in full, which
// make a member's closed lots outnumber its open ones by 15 to 1.
const planHistory = 40

// closedHistory gives each member planHistory closed lots of 10 points,
// each used up by one lot use, as a redeem leaves them (the ledger stays
// conserved: a closed lot adds nothing to a balance).
var closedHistory = fmt.Sprintf(`WITH closed AS (
	INSERT INTO lots (id, owner_no, amount, remaining, earned_at, expires_at, rules_version, store)
	SELECT sha256(l.id || int4send(k)), l.owner_no, 10, 0, l.earned_at, l.expires_at, l.rules_version, l.store
	FROM (SELECT DISTINCT ON (owner_no) * FROM lots WHERE owner_no > 0 AND remaining = 0 ORDER BY owner_no, id) l, generate_series(1, %d) k
	RETURNING id
) INSERT INTO lot_uses (txid, part, lot, amount) SELECT id, 0, id, 10 FROM closed`, planHistory)

// TestLotReadsByOwnerUseTheIndexWithMembers defends the per-batch reads of
// lots by owner (open lots, the check's lot sums, the snapshot's expiring
// points) and a link's move of a held card's lots on a ledger of real
// members, most of whose lots are closed: each must search the partial
// index lots_by_owner_no, which holds no closed lot of a member, never scan
// the lots. On PostgreSQL the plans run (EXPLAIN ANALYZE) on analyzed
// statistics, for 500 member owners and for 500 card owners.
func TestLotReadsByOwnerUseTheIndexWithMembers(t *testing.T) {
	for name, open := range dialects {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			members, cards := memberLedger(t, s)
			horizon := storetest.Start().AddDate(2, 0, 0).UnixMicro()
			for who, owners := range map[string][]string{"members": members[:500], "cards": cards[:500]} {
				plans, err := s.PlanLotReads(context.Background(), owners, horizon)
				if err != nil {
					t.Fatalf("plans for %d %s: %v", len(owners), who, err)
				}
				for read, plan := range plans {
					text := strings.Join(plan, "\n")
					t.Logf("plan of %s for %d %s:\n%s", read, len(owners), who, arrayLiteral.ReplaceAllString(text, "'{...}'"))
					if bad, ok := lotsScanned(s.Dialect(), text); ok {
						t.Errorf("plan of %s for %d %s:\n%s\nwant a search of lots_by_owner_no by owner number, not %q", read, len(owners), who, arrayLiteral.ReplaceAllString(text, "'{...}'"), bad)
					}
				}
			}
		})
	}
}

// arrayLiteral matches the owners array a PostgreSQL plan spells out.
var arrayLiteral = regexp.MustCompile(`'\{[^}]*\}'`)

// lotsScanned reports the step of a plan that reads lots other than by
// searching lots_by_owner_no, or a plan without that search.
func lotsScanned(d sqlstore.Dialect, plan string) (string, bool) {
	var scans, search []string
	switch d {
	case sqlstore.SQLite:
		scans = []string{"SCAN lots", "lots_open_expiry", "lots_expiring", "PRIMARY KEY"}
		search = []string{"INDEX lots_by_owner_no (owner_no=?"}
	case sqlstore.Postgres:
		scans = []string{"Seq Scan on lots", "lots_open_expiry", "lots_expiring", "lots_pkey"}
		search = []string{"Index Scan using lots_by_owner_no on lots", "Index Only Scan using lots_by_owner_no on lots", "Bitmap Index Scan on lots_by_owner_no"}
	}
	for _, s := range scans {
		if strings.Contains(plan, s) {
			return s, true
		}
	}
	for _, s := range search {
		if strings.Contains(plan, s) {
			return "", false
		}
	}
	return "no search of lots_by_owner_no", true
}
