package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds (seconds) of the latency histogram.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// StageMetrics are one stage's counters, exported in the Prometheus text format. Written by
// hand: the format is small and the project keeps to the dependencies its design names.
type StageMetrics struct {
	stage      string
	In         atomic.Int64 // inputs received
	Out        atomic.Int64 // outputs published
	Acked      atomic.Int64
	Retried    atomic.Int64 // transient errors, NakWithDelay
	Dead       atomic.Int64 // dead-lettered inputs
	InFlight   atomic.Int64
	mu         sync.Mutex
	buckets    []int64
	latencySum float64
	latencyN   int64
}

// Observe records one input's processing latency.
func (m *StageMetrics) Observe(d time.Duration) {
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.buckets == nil {
		m.buckets = make([]int64, len(latencyBuckets))
	}
	for i, b := range latencyBuckets {
		if s <= b {
			m.buckets[i]++
		}
	}
	m.latencySum += s
	m.latencyN++
}

// LatencyQuantile estimates a latency quantile (q in [0,1]) from the histogram.
func (m *StageMetrics) LatencyQuantile(q float64) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.latencyN == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(m.latencyN)))
	for i, b := range latencyBuckets {
		if m.buckets[i] >= rank {
			return time.Duration(b * float64(time.Second))
		}
	}
	return time.Duration(latencyBuckets[len(latencyBuckets)-1] * float64(time.Second))
}

// Registry holds the metrics of the stages of one process.
type Registry struct {
	mu     sync.Mutex
	stages map[string]*StageMetrics
	ready  map[string]func() error
	extra  []extraMetric
}

// extraMetric is a stage's own counter or gauge, read when /metrics is scraped.
type extraMetric struct {
	name, help, typ string
	labels          string // rendered {k="v",...}
	get             func() int64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{stages: map[string]*StageMetrics{}, ready: map[string]func() error{}}
}

// Stage returns (creating once) the metrics of a stage.
func (r *Registry) Stage(name string) *StageMetrics {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.stages[name]
	if !ok {
		m = &StageMetrics{stage: name}
		r.stages[name] = m
	}
	return m
}

// AddCounterFunc adds a stage's own counter (typ "counter" or "gauge"), read by get at every
// scrape; series of one name share its help. labels are rendered in sorted key order.
func (r *Registry) AddCounterFunc(name, help, typ string, labels map[string]string, get func() int64) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, labels[k])
	}
	rendered := ""
	if len(parts) > 0 {
		rendered = "{" + strings.Join(parts, ",") + "}"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.extra = append(r.extra, extraMetric{name: name, help: help, typ: typ, labels: rendered, get: get})
}

// AddHealthCheck registers a check /healthz runs; a failing check answers 503.
func (r *Registry) AddHealthCheck(name string, check func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready[name] = check
}

// WriteText writes every metric in the Prometheus text exposition format.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	names := make([]string, 0, len(r.stages))
	for n := range r.stages {
		names = append(names, n)
	}
	extra := slices.Clone(r.extra)
	r.mu.Unlock()
	sort.Strings(names)
	var b strings.Builder
	counter := func(metric, help string, get func(*StageMetrics) int64, typ string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", metric, help, metric, typ)
		for _, n := range names {
			fmt.Fprintf(&b, "%s{stage=%q} %d\n", metric, n, get(r.Stage(n)))
		}
	}
	counter("personcluster_messages_in_total", "Inputs received.", func(m *StageMetrics) int64 { return m.In.Load() }, "counter")
	counter("personcluster_messages_out_total", "Outputs published and acknowledged by JetStream.", func(m *StageMetrics) int64 { return m.Out.Load() }, "counter")
	counter("personcluster_messages_acked_total", "Inputs acknowledged after their outputs were stored.", func(m *StageMetrics) int64 { return m.Acked.Load() }, "counter")
	counter("personcluster_errors_transient_total", "Inputs negatively acknowledged for a retry.", func(m *StageMetrics) int64 { return m.Retried.Load() }, "counter")
	counter("personcluster_dead_letters_total", "Inputs terminated and sent to the dead-letter stream.", func(m *StageMetrics) int64 { return m.Dead.Load() }, "counter")
	counter("personcluster_in_flight", "Inputs being processed now.", func(m *StageMetrics) int64 { return m.InFlight.Load() }, "gauge")
	const h = "personcluster_process_seconds"
	fmt.Fprintf(&b, "# HELP %s Time from receiving an input to acknowledging it.\n# TYPE %s histogram\n", h, h)
	for _, n := range names {
		m := r.Stage(n)
		m.mu.Lock()
		for i, le := range latencyBuckets {
			var c int64
			if m.buckets != nil {
				c = m.buckets[i]
			}
			fmt.Fprintf(&b, "%s_bucket{stage=%q,le=\"%g\"} %d\n", h, n, le, c)
		}
		fmt.Fprintf(&b, "%s_bucket{stage=%q,le=\"+Inf\"} %d\n%s_sum{stage=%q} %g\n%s_count{stage=%q} %d\n",
			h, n, m.latencyN, h, n, m.latencySum, h, n, m.latencyN)
		m.mu.Unlock()
	}
	sort.SliceStable(extra, func(i, j int) bool { return extra[i].name+extra[i].labels < extra[j].name+extra[j].labels })
	for i, e := range extra {
		if i == 0 || extra[i-1].name != e.name {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", e.name, e.help, e.name, e.typ)
		}
		fmt.Fprintf(&b, "%s%s %d\n", e.name, e.labels, e.get())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Health runs the registered checks.
func (r *Registry) Health() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for name, check := range r.ready {
		if err := check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Handler serves /metrics and /healthz.
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_ = r.WriteText(w)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := r.Health(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// ServeHTTP serves the registry on addr until ctx ends. An empty addr serves nothing.
// It returns the bound address (useful with ":0").
func (r *Registry) ServeHTTP(ctx context.Context, addr string, log *slog.Logger) (string, error) {
	if addr == "" {
		return "", nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("stage: metrics listener on %s: %w", addr, err)
	}
	Serve(ctx, ln, r.Handler(), log, "metrics server", nil)
	return ln.Addr().String(), nil
}

// Serve serves h on ln in the background until ctx ends, then calls beforeShutdown (if not
// nil) and shuts the server down, giving requests in flight 2 s. A server that fails is
// logged as "<what> stopped".
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, what string, beforeShutdown func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		if beforeShutdown != nil {
			beforeShutdown()
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" stopped", "err", err)
		}
	}()
}
