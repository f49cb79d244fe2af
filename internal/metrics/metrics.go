package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Registry holds metric families in registration order.
type Registry struct {
	mu       sync.Mutex
	families []*family
	names    map[string]bool
}

// New returns an empty registry.
func New() *Registry { return &Registry{names: map[string]bool{}} }

type kind string

const (
	kindCounter   kind = "counter"
	kindGauge     kind = "gauge"
	kindHistogram kind = "histogram"
)

type family struct {
	name, help string
	kind       kind
	labels     []string
	buckets    []float64      // histogram
	fn         func() float64 // gauge or counter func

	mu     sync.Mutex
	series map[string]*series
	order  []string
}

type series struct {
	values []string
	mu     sync.Mutex
	value  float64
	counts []uint64 // per bucket, cumulative at write time
	count  uint64
	sum    float64
}

var nameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
var labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (r *Registry) add(f *family) *family {
	if !nameRE.MatchString(f.name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", f.name)) // a programming error, caught by any test
	}
	for _, l := range f.labels {
		if !labelRE.MatchString(l) || strings.HasPrefix(l, "__") || l == "le" {
			panic(fmt.Sprintf("metrics: invalid label name %q on %s", l, f.name))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[f.name] {
		panic(fmt.Sprintf("metrics: %s registered twice", f.name))
	}
	r.names[f.name] = true
	f.series = map[string]*series{}
	r.families = append(r.families, f)
	return f
}

func (f *family) with(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", f.name, len(f.labels), len(values)))
	}
	k := strings.Join(values, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.series[k]
	if !ok {
		s = &series{values: slices.Clone(values)}
		if f.kind == kindHistogram {
			s.counts = make([]uint64, len(f.buckets))
		}
		f.series[k] = s
		f.order = append(f.order, k)
	}
	return s
}

// Counter is a family of monotonically increasing values.
type Counter struct{ f *family }

// Counter registers a counter; its name should end in _total.
func (r *Registry) Counter(name, help string, labels ...string) *Counter {
	return &Counter{r.add(&family{name: name, help: help, kind: kindCounter, labels: labels})}
}

// Add adds v (which must not be negative) to the series with these label values.
func (c *Counter) Add(v float64, labelValues ...string) {
	if v < 0 {
		return
	}
	s := c.f.with(labelValues)
	s.mu.Lock()
	s.value += v
	s.mu.Unlock()
}

// Inc adds one.
func (c *Counter) Inc(labelValues ...string) { c.Add(1, labelValues...) }

// Value returns the current value of a series (for tests).
func (c *Counter) Value(labelValues ...string) float64 {
	s := c.f.with(labelValues)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.value
}

// Gauge is a family of values that go up and down.
type Gauge struct{ f *family }

// Gauge registers a gauge.
func (r *Registry) Gauge(name, help string, labels ...string) *Gauge {
	return &Gauge{r.add(&family{name: name, help: help, kind: kindGauge, labels: labels})}
}

// Set sets the series with these label values.
func (g *Gauge) Set(v float64, labelValues ...string) {
	s := g.f.with(labelValues)
	s.mu.Lock()
	s.value = v
	s.mu.Unlock()
}

// GaugeFunc registers a gauge without labels read from fn at every scrape.
// fn must be quick and safe for concurrent use.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	r.add(&family{name: name, help: help, kind: kindGauge, fn: fn})
}

// CounterFunc registers a counter without labels read from fn at every
// scrape, for a count another package keeps. fn must be quick, safe for
// concurrent use and never decrease.
func (r *Registry) CounterFunc(name, help string, fn func() float64) {
	r.add(&family{name: name, help: help, kind: kindCounter, fn: fn})
}

// Histogram is a family of distributions over fixed buckets.
type Histogram struct{ f *family }

// Histogram registers a histogram with the given upper bounds (ascending;
// +Inf is implied).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *Histogram {
	if !slices.IsSorted(buckets) {
		panic(fmt.Sprintf("metrics: %s buckets not ascending", name))
	}
	return &Histogram{r.add(&family{name: name, help: help, kind: kindHistogram, labels: labels, buckets: slices.Clone(buckets)})}
}

// Observe records v in the series with these label values.
func (h *Histogram) Observe(v float64, labelValues ...string) {
	s := h.f.with(labelValues)
	i, _ := slices.BinarySearch(h.f.buckets, v)
	s.mu.Lock()
	if i < len(s.counts) {
		s.counts[i]++
	}
	s.count++
	s.sum += v
	s.mu.Unlock()
}

// Count returns how many values a series has seen (for tests).
func (h *Histogram) Count(labelValues ...string) uint64 {
	s := h.f.with(labelValues)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// LatencyBuckets suit durable local operations: 100 µs to 10 s.
var LatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}

// WriteTo writes every family in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := slices.Clone(r.families)
	r.mu.Unlock()
	cw := &countWriter{w: bufio.NewWriter(w)}
	for _, f := range fams {
		f.write(cw)
	}
	if err := cw.w.Flush(); err != nil && cw.err == nil {
		cw.err = err
	}
	return cw.n, cw.err
}

// Handler serves the registry for Prometheus to scrape.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteTo(w)
	})
}

func (f *family) write(w *countWriter) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
	if f.fn != nil {
		fmt.Fprintf(w, "%s %s\n", f.name, formatFloat(f.fn()))
		return
	}
	f.mu.Lock()
	keys := slices.Clone(f.order)
	ser := make([]*series, len(keys))
	for i, k := range keys {
		ser[i] = f.series[k]
	}
	f.mu.Unlock()
	for _, s := range ser {
		s.mu.Lock()
		switch f.kind {
		case kindHistogram:
			var cum uint64
			for i, b := range f.buckets {
				cum += s.counts[i]
				fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, labels(f.labels, s.values, "le", formatFloat(b)), cum)
			}
			fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, labels(f.labels, s.values, "le", "+Inf"), s.count)
			fmt.Fprintf(w, "%s_sum%s %s\n", f.name, labels(f.labels, s.values, "", ""), formatFloat(s.sum))
			fmt.Fprintf(w, "%s_count%s %d\n", f.name, labels(f.labels, s.values, "", ""), s.count)
		default:
			fmt.Fprintf(w, "%s%s %s\n", f.name, labels(f.labels, s.values, "", ""), formatFloat(s.value))
		}
		s.mu.Unlock()
	}
}

func labels(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName + `="` + extraValue + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
