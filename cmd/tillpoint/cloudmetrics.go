package main

import (
	"strconv"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/internal/metrics"
)

// cloudMetrics is the cloud's Prometheus registry, fed by the server as
// its Observer; it is served at GET /metrics with the admin token.
type cloudMetrics struct {
	requests   *metrics.Counter
	requestDur *metrics.Histogram
	ops        *metrics.Counter
	flagged    *metrics.Counter

	expiredLots, expiredPoints *metrics.Counter
	expiryRuns                 *metrics.Counter
	lastExpiry                 *metrics.Gauge
}

// newCloudMetrics registers the cloud's metrics in r: what srv answers and
// applies, and what ledger's transactions go through.
func newCloudMetrics(r *metrics.Registry, srv *server.Server, ledger *sqlstore.Store) *cloudMetrics {
	m := &cloudMetrics{
		requests: r.Counter("tillpoint_cloud_requests_total",
			"Requests answered, by route, HTTP status and outcome: for POST /v1/batches the ack's status (applied, duplicate, gap) or the problem code the batch was refused with.",
			"route", "status", "outcome"),
		requestDur: r.Histogram("tillpoint_cloud_request_seconds", "Time to answer a request, by route.", metrics.LatencyBuckets, "route"),
		ops: r.Counter("tillpoint_cloud_ops_total",
			"Ops of the batches applied, by result (applied, duplicate, rejected) and the reason code of a rejection; a batch acknowledged again adds nothing.",
			"result", "reason"),
		flagged: r.Counter("tillpoint_cloud_ops_flagged_total",
			"Ops of the batches applied that the ledger flagged, by flag: overspend (an offline redeem beyond the balance) and clock_ahead (a till's clock ahead of the cloud's) for the fraud report; reevaluated and rules_unknown (a till on other earn rules than the cloud's); held and no_card.",
			"flag"),
		expiredLots:   r.Counter("tillpoint_cloud_expired_lots_total", "Lots whose points expiry lapsed."),
		expiredPoints: r.Counter("tillpoint_cloud_expired_points_total", "Points expiry lapsed."),
		expiryRuns:    r.Counter("tillpoint_cloud_expiry_runs_total", "Runs of point expiry, by result (ok, failed, skipped: another cloud over the ledger was running it).", "result"),
		lastExpiry:    r.Gauge("tillpoint_cloud_expiry_last_success_timestamp_seconds", "When point expiry last ran to the end (Unix seconds); alert when it falls far behind."),
	}
	r.GaugeFunc("tillpoint_cloud_apply_in_flight", "Batches the ledger is applying now; at the server's limit ("+strconv.Itoa(srv.MaxConcurrentApply)+") more wait, and those that wait too long get 503.",
		func() float64 { return float64(srv.ApplyInFlight()) })
	if srv.TLSCertFile != "" {
		r.GaugeFunc("tillpoint_cloud_tls_certificate_expiry_timestamp_seconds", "When the TLS certificate the cloud serves expires (Unix seconds); a renewed one is picked up within a minute. Alert well before it.",
			func() float64 { return float64(srv.CertificateExpiry().Unix()) })
	}
	r.CounterFunc("tillpoint_cloud_ledger_retries_total", "Ledger transactions that conflicted with others (PostgreSQL) and ran again alone.",
		func() float64 { return float64(ledger.Stats().Retried) })
	r.CounterFunc("tillpoint_cloud_ledger_reruns_total", "Ledger transactions that ran a third time or more; should stay 0.",
		func() float64 { return float64(ledger.Stats().Rerun) })
	return m
}

// Request implements server.Observer.
func (m *cloudMetrics) Request(route string, status int, outcome string, took time.Duration) {
	m.requests.Inc(route, strconv.Itoa(status), outcome)
	m.requestDur.Observe(took.Seconds(), route)
}

// Ops implements server.Observer.
func (m *cloudMetrics) Ops(results []cloud.OpResult) {
	for _, r := range results {
		m.ops.Inc(r.Status.String(), r.Reason)
		for _, f := range r.Flags.Names() {
			m.flagged.Inc(f)
		}
	}
}

// expired records a run of point expiry that ended at.
func (m *cloudMetrics) expired(res cloud.ExpireResult, err error, at time.Time) {
	m.expiredLots.Add(float64(res.Lots))
	m.expiredPoints.Add(float64(res.Points))
	switch {
	case err != nil:
		m.expiryRuns.Inc("failed")
		return
	case res.Skipped:
		m.expiryRuns.Inc("skipped")
		return
	}
	m.expiryRuns.Inc("ok")
	m.lastExpiry.Set(float64(at.Unix()))
}
