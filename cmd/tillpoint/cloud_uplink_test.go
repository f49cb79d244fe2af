package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/enroll"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// TestEnrolledTerminalsJournalReachesTheCloudExactlyOnce wires the real
// pieces the way an installer does: `tillpoint cloud`, `cloud enroll-code`,
// `tillpoint enroll`, then the terminal's journal shipped by the uplink with
// the enrolled key. Every op lands once, a second sync sends nothing, and
// the ledger balances.
func TestEnrolledTerminalsJournalReachesTheCloudExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "ledger.db")
	const token = "metrics-metrics-metrics-metrics-0"
	cl := startCloud(t, map[string]string{"TILLPOINT_ADMIN_TOKEN": token}, "--db", db, "--program", "acme")
	st, j := enrollWithJournal(t, cl, db, filepath.Join(dir, "terminal"))
	const n = 250
	epoch := appendEarns(t, j, n)
	u := newTestUplink(t, j, st, st.CloudURL)
	if err := u.Sync(ctx); err != nil {
		t.Fatalf("sync: %v (state %+v)", err, u.State())
	}
	s := u.State()
	if s.Backlog != 0 || s.Applied != n || s.Rejected != 0 {
		t.Errorf("uplink state backlog %d applied %d rejected %d, want 0 %d 0", s.Backlog, s.Applied, s.Rejected, n)
	}
	sent := s.Sent
	if err := u.Sync(ctx); err != nil {
		t.Fatalf("second sync: %v", err)
	}
	if got := u.State().Sent; got != sent {
		t.Errorf("a second sync sent %d more batches, want none", got-sent)
	}

	// The operator's metrics count every op once, the batches by their
	// ack, and only for whoever has the admin token.
	scraped := scrapeMetrics(t, cl.url, token)
	batches := (n + testUplinkMaxOps - 1) / testUplinkMaxOps
	for _, want := range []string{
		fmt.Sprintf(`tillpoint_cloud_ops_total{result="applied",reason=""} %d`, n),
		fmt.Sprintf(`tillpoint_cloud_requests_total{route="POST /v1/batches",status="200",outcome="applied"} %d`, batches),
		fmt.Sprintf(`tillpoint_cloud_request_seconds_count{route="POST /v1/batches"} %d`, batches),
		// The cards have no member (held) and the cloud no rules (unknown).
		fmt.Sprintf(`tillpoint_cloud_ops_flagged_total{flag="held"} %d`, n),
		fmt.Sprintf(`tillpoint_cloud_ops_flagged_total{flag="rules_unknown"} %d`, n),
		"tillpoint_cloud_apply_in_flight 0",
		"tillpoint_cloud_ledger_retries_total 0",
	} {
		if !strings.Contains(scraped, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, scraped)
		}
	}
	if strings.Contains(scraped, `result="duplicate"`) || strings.Contains(scraped, `result="rejected"`) {
		t.Errorf("metrics count duplicate or rejected ops where every op applied once:\n%s", scraped)
	}
	if resp, err := http.Get(cl.url + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("metrics without the token: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}

	ledger, err := sqlstore.Open(ctx, db, sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	wm, _, err := ledger.Watermark(ctx, st.Terminal, epoch)
	if err != nil || wm != n {
		t.Errorf("ledger watermark %d (err %v), want %d", wm, err, n)
	}
	report, err := ledger.Check(ctx)
	if err != nil {
		t.Fatalf("ledger check: %v %q", err, report.Problems)
	}
	if report.Liability != n*10 {
		t.Errorf("liability %d, want %d: every op exactly once", report.Liability, n*10)
	}
	if code, out, errOut := run(t, "cloud", "check", "--db", db); code != 0 {
		t.Fatalf("cloud check on a sound ledger: exit %d, %s %s", code, out, errOut)
	}

	// A balance changed behind the ledger's back: check must say so and fail.
	if _, err := ledger.DB().ExecContext(ctx, `UPDATE owners SET avail = avail + 5
		WHERE id = (SELECT id FROM owners ORDER BY id LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "cloud", "check", "--db", db)
	if code != 1 || !strings.Contains(out, "PROBLEM") || !strings.Contains(errOut, "does not balance") {
		t.Errorf("cloud check on a tampered ledger: exit %d, stdout %q, stderr %q; want 1 with the problem listed", code, out, errOut)
	}
}

// scrapeMetrics reads the cloud's /metrics with the admin token.
func scrapeMetrics(t *testing.T, url, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape metrics: %d %s (err %v), want 200 text/plain", resp.StatusCode, body, err)
	}
	return string(body)
}

// appendEarns appends n earns of 10 points to j, on seven cards, and
// returns their epoch.
func appendEarns(t *testing.T, j *journal.Journal, n int) (epoch uint32) {
	t.Helper()
	for i := range n {
		var card loyalty.CardHash
		card[0] = byte(1 + i%7) // never the zero hash: that is an earn without a card
		op, err := j.Append(context.Background(), loyalty.Op{Kind: loyalty.OpEarn, Card: card, Points: 10,
			Basket: &loyalty.Basket{Currency: "EUR", Lines: []loyalty.Line{{SKU: "coffee", Quantity: 1, Amount: 1000}}}})
		if err != nil {
			t.Fatalf("append op %d: %v", i, err)
		}
		epoch = op.Epoch
	}
	return epoch
}

// testUplinkMaxOps is the batch size of newTestUplink.
const testUplinkMaxOps = 100

// newTestUplink returns an uplink shipping j to the cloud at url as the
// enrolled terminal st, in batches of testUplinkMaxOps, retrying quickly.
func newTestUplink(t *testing.T, j *journal.Journal, st *enroll.State, url string) *uplink.Uplink {
	t.Helper()
	signer, err := batch.NewSigner(st.Terminal, st.Program, st.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := uplink.DefaultConfig()
	cfg.URL, cfg.Signer, cfg.CloudKey, cfg.Client = url, signer, st.CloudKey, http.DefaultClient
	cfg.MaxOps, cfg.MinBackoff, cfg.MaxBackoff = testUplinkMaxOps, 10*time.Millisecond, 200*time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	u, err := uplink.New(j, cfg)
	if err != nil {
		t.Fatalf("new uplink: %v", err)
	}
	return u
}

// enrollWithJournal enrolls terminal T1 with the cloud cl over ledger db,
// its state in dir, and opens its journal there, closed when the test ends.
func enrollWithJournal(t *testing.T, cl *runningCloud, db, dir string) (*enroll.State, *journal.Journal) {
	t.Helper()
	enrollT1(t, cl, db, dir)
	st, err := enroll.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	j, err := journal.Open(context.Background(), filepath.Join(dir, "journal.db"), journal.Options{Terminal: st.Terminal, Store: st.Store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return st, j
}

// wantEachOpOnce checks the ledger db, its cloud stopped, for the n ops of
// appendEarns the terminal sent in epoch, each applied once: the watermark
// at n, 10 points each, and a ledger that balances. what says when.
func wantEachOpOnce(t *testing.T, db, terminal string, epoch uint32, n int, what string) {
	t.Helper()
	ctx := context.Background()
	ledger, err := sqlstore.Open(ctx, db, sqlstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	wm, _, err := ledger.Watermark(ctx, terminal, epoch)
	report, cerr := ledger.Check(ctx)
	if err != nil || cerr != nil || wm != uint64(n) || report.Liability != loyalty.Points(10*n) {
		t.Errorf("ledger %s: watermark %d (%v), liability %d (%v); want all %d ops once, %d points", what, wm, err, report.Liability, cerr, n, 10*n)
	}
}
