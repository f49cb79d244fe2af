package sqlstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenLotsReadFromIndexAlone defends the brief read of a debited
// owner's open lots: on SQLite it is served by lots_by_owner_no alone (a
// covering index), without a lookup of each lot's row, which cost a B-tree
// search per open lot on every redeem.
func TestOpenLotsReadFromIndexAlone(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+s.expand(qOpenLots, 0, 4), int64(-1), int64(-2), int64(3), int64(4))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var id, parent, unused int64
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "USING COVERING INDEX lots_by_owner_no (owner_no=?)") {
		t.Errorf("plan of the open lots read:\n%s\nwant a search of the covering index lots_by_owner_no by owner number", text)
	}
}

// TestCopyTargetTakesOnlyPlainInserts defends which writes PostgreSQL may
// take by COPY: an insert with a conflict clause or an update must stay a
// statement, and a plain insert's columns must be read whole, across the
// line breaks of a long template.
func TestCopyTargetTakesOnlyPlainInserts(t *testing.T) {
	table, cols, ok := copyTarget(iOps)
	if !ok || table != "ops" || len(cols) != 20 || cols[0] != "terminal" || cols[12] != "rules_version" || cols[19] != "body" {
		t.Errorf("copyTarget(iOps) = %q, %q, %v; want ops and its 20 columns", table, cols, ok)
	}
	for _, tmpl := range []string{iCardStores, iAccounts, uLots, uOwners, iEpoch, qOwners} {
		if table, _, ok := copyTarget(tmpl); ok {
			t.Errorf("copyTarget(%q) = %q, true; want false: not a plain insert of rows", tmpl, table)
		}
	}
}
