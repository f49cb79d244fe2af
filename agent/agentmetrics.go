package agent

import "github.com/tillpoint/tillpoint/internal/metrics"

type agentMetrics struct {
	ops         *metrics.Counter
	appendSecs  *metrics.Histogram
	opSecs      *metrics.Histogram
	deviceUp    *metrics.Gauge
	syncOnline  *metrics.Gauge
	syncBacklog *metrics.Gauge
	cards       *metrics.Counter
	replays     *metrics.Counter
}

func newAgentMetrics(r *metrics.Registry, a *Agent) *agentMetrics {
	m := &agentMetrics{
		ops:         r.Counter("tillpoint_ops_total", "Operations requested, by kind (earn, redeem, reverse, enroll) and outcome (ok, refused, failed).", "kind", "outcome"),
		appendSecs:  r.Histogram("tillpoint_journal_append_seconds", "Time for the journal to make one op durable.", metrics.LatencyBuckets),
		opSecs:      r.Histogram("tillpoint_op_seconds", "Time from request to durable op, by kind.", metrics.LatencyBuckets, "kind"),
		deviceUp:    r.Gauge("tillpoint_device_up", "1 when the device works, 0 when it reports an error or is gone.", "device", "kind"),
		syncOnline:  r.Gauge("tillpoint_sync_online", "1 when the uplink reaches the cloud."),
		syncBacklog: r.Gauge("tillpoint_sync_backlog_ops", "Ops in the journal the cloud has not acknowledged."),
		cards:       r.Counter("tillpoint_cards_presented_total", "Cards presented, by source (scanner, nfc, api).", "source"),
		replays:     r.Counter("tillpoint_idempotent_replays_total", "POST requests answered from the idempotency record instead of being run again."),
	}
	r.GaugeFunc("tillpoint_rules_version", "Version of the earn rules in use; 0 before the first rules arrive.", func() float64 { return float64(a.rulesVersion()) })
	return m
}
