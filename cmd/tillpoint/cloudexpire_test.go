package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
)

// ledgerWithLapsedPoints writes a SQLite ledger at db in which three cards
// earned 10, 20 and 30 points in January 2026 under rules whose points
// live one month: 60 points past their expiry.
func ledgerWithLapsedPoints(t *testing.T, db string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, db, sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rules := storetest.TestRules(1)
	rules.ExpiryMonths = 1
	if err := s.PublishRules(ctx, rules, storetest.Start()); err != nil {
		t.Fatal(err)
	}
	tl := storetest.NewTill(t, s, "t1", "s1")
	for i := 1; i <= 3; i++ {
		tl.Send(t, s, tl.Earn(storetest.Card(i), 1000*int64(i), loyalty.Points(10*i)))
	}
}

// TestCloudExpireLapsesExpiredPointsOnce defends the command an operator
// runs from cron: the points past their expiry lapse, once, and a dry run
// tells how many would, lapsing none; while another process holds the
// expiry lease, it lapses nothing and says so.
func TestCloudExpireLapsesExpiredPointsOnce(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	ledgerWithLapsedPoints(t, db)
	holdExpiryLease(t, db, time.Minute)
	if code, out, errOut := run(t, "cloud", "expire", "--db", db); code != 0 || !strings.Contains(out, "another cloud over this ledger is expiring points now") {
		t.Errorf("cloud expire while another process runs it: exit %d, stdout %q, stderr %q; want 0 and a skip", code, out, errOut)
	}
	holdExpiryLease(t, db, -time.Minute) // that process is done
	for i, step := range []struct {
		args []string
		want string
	}{
		{[]string{"--dry-run"}, "would expire 3 lots, 60 points (dry run: nothing changed)\n"},
		{nil, "expired 3 lots, 60 points\n"},
		{nil, "expired 0 lots, 0 points\n"},
		{[]string{"--dry-run"}, "would expire 0 lots, 0 points (dry run: nothing changed)\n"},
	} {
		if code, out, errOut := run(t, append([]string{"cloud", "expire", "--db", db}, step.args...)...); code != 0 || out != step.want {
			t.Errorf("cloud expire, step %d: exit %d, stdout %q, stderr %q; want 0 and %q", i+1, code, out, errOut, step.want)
		}
	}
	if code, out, _ := run(t, "cloud", "check", "--db", db); code != 0 || !strings.Contains(out, "liability 0,") || !strings.Contains(out, "expired 60,") {
		t.Errorf("cloud check after expiry: exit %d, %q; want the 60 points expired and no liability", code, out)
	}
}

// TestRunningCloudLapsesExpiredPoints defends expiry in a running cloud:
// without anyone asking, the points past their expiry lapse, the log says
// so, and the metrics count them and the run.
func TestRunningCloudLapsesExpiredPoints(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "ledger.db")
	ledgerWithLapsedPoints(t, db)
	const token = "expiry-expiry-expiry-expiry-expiry"
	cl := startCloud(t, map[string]string{"TILLPOINT_ADMIN_TOKEN": token}, "--db", db, "--expire-every", "50ms")
	deadline := time.Now().Add(10 * time.Second)
	var scraped string
	for {
		scraped = scrapeMetrics(t, cl.url, token)
		if strings.Contains(scraped, "tillpoint_cloud_expired_points_total 60\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 60 points expired within 10 s; metrics:\n%s\nlog:\n%s", scraped, cl.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"tillpoint_cloud_expired_lots_total 3\n", `tillpoint_cloud_expiry_runs_total{result="ok"} `} {
		if !strings.Contains(scraped, want) {
			t.Errorf("metrics lack %q:\n%s", want, scraped)
		}
	}
	if strings.Contains(scraped, `result="failed"`) {
		t.Errorf("an expiry run failed:\n%s", scraped)
	}
	if log := cl.stderr.String(); strings.Count(log, "points expired") != 1 || !strings.Contains(log, "points=60") {
		t.Errorf("log: want one line of 60 points expired:\n%s", log)
	}
	if code, out, _ := run(t, "cloud", "check", "--db", db); code != 0 || !strings.Contains(out, "expired 60,") {
		t.Errorf("cloud check beside the running cloud: exit %d, %q; want the 60 points expired", code, out)
	}
}

// TestExpiryRunsOfReplicasDriftApart: the wait between two expiry runs is
// the interval give or take a tenth, drawn anew each time, so that cloud
// processes started together do not run expiry together ever after.
func TestExpiryRunsOfReplicasDriftApart(t *testing.T) {
	const interval = time.Hour
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := jittered(interval)
		if d < interval-interval/10 || d > interval+interval/10 {
			t.Fatalf("wait %v, want within a tenth of %v", d, interval)
		}
		seen[d] = true
	}
	if len(seen) < 900 {
		t.Errorf("1,000 waits took %d values; want them drawn anew each time", len(seen))
	}
	if got := jittered(5 * time.Nanosecond); got != 5*time.Nanosecond {
		t.Errorf("an interval too short to spread: %v, want it unchanged", got)
	}
}

// holdExpiryLease sets the expiry lease of the ledger db as another
// process's that runs out in d (or ran out, for a negative d).
func holdExpiryLease(t *testing.T, db string, d time.Duration) {
	t.Helper()
	ledger, err := sqlstore.Open(context.Background(), db, sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	if _, err := ledger.DB().Exec(`INSERT INTO leases (name, holder, expires) VALUES ('expiry', 'another cloud', ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires`, time.Now().Add(d).UnixMicro()); err != nil {
		t.Fatal(err)
	}
}
