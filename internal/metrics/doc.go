// Package metrics is a small Prometheus registry with the text exposition
// format (version 0.0.4): counters, gauges and histograms with labels, and
// gauges read from a function at scrape time.
//
// A Registry is made explicitly and passed to whoever records into it:
// there are no package-level metrics and no default registry. The package
// must never block a recorder on a scrape for longer than copying numbers,
// or accept a metric or label name Prometheus would reject.
//
// Format reference: https://prometheus.io/docs/instrumenting/exposition_formats/
package metrics
