// Package metrics exposes creditgate's Prometheus metrics on a registry of its
// own (never the global one, so tests and several instances in one process do
// not collide). Metrics implements proxy.Observer for the data plane (requests,
// tokens, spend, 429s by reason, open holds, latencies, token drift, and what
// upstreams claimed beyond what their requests could cost), provides a
// go-redis hook for Redis latency and errors, a gauge for the settlement spool's
// depth, counters of configuration reloads and of holds that expired unsettled,
// counts money coming in
// (purchases, auto-recharges, payment provider events, refunds and disputes, and
// the deliveries of the charger and notice webhooks: payments.go), and serves
// all of it in the Prometheus text format. Label values are bounded: models come from the
// configured price list (anything else is "other"), endpoints from the metered
// paths, and reasons and token classes from fixed sets, so a client sending
// made-up model names cannot blow up the number of series. Money is counted in
// integer micro-USD, which float64 counters hold exactly up to $9 billion.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/proxy"
)

// Namespace prefixes every metric name.
const Namespace = "creditgate"

// Label values used when the real value is not a bounded one.
const (
	// OtherLabel stands for a model without its own price entry (a model priced
	// by pricing.default, say), an unknown endpoint, reason or status.
	OtherLabel = "other"
	// NoneLabel is the model of a request refused before its model was known
	// (no key, malformed JSON).
	NoneLabel = "none"
)

// Latency buckets, in seconds. LLM answers take from tens of milliseconds
// (embeddings) to minutes (long generations); Redis answers in well under a
// millisecond on a healthy network.
var (
	upstreamBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600}
	ttftBuckets     = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60}
	redisBuckets    = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
)

// quotaReasons are the 429 reasons the ledger gives (billing.Reason*).
var quotaReasons = []string{billing.ReasonEmpty, billing.ReasonExpired, billing.ReasonInsufficient}

// Reload results, the values of the result label of creditgate_config_reloads_total.
const (
	ReloadOK     = "ok"
	ReloadFailed = "failed"
)

// Options configure Metrics.
type Options struct {
	// Pricing returns the current price list (it changes on hot reload). A model
	// gets its own label value only if it has an entry in it; nil makes every
	// model "other".
	Pricing func() *metering.Pricing
	// NoProcessMetrics leaves out the Go runtime and process collectors (for
	// tests that compare whole outputs).
	NoProcessMetrics bool
}

// Metrics holds creditgate's collectors. Create it with New; it is safe for
// concurrent use. Its methods never block, as proxy.Observer requires.
type Metrics struct {
	reg     *prometheus.Registry
	pricing func() *metering.Pricing
	models  atomic.Pointer[modelSet]
	spool   atomic.Pointer[func() int]
	// activityDropped reads the console aggregate's dropped events.
	activityDropped atomic.Pointer[func() int64]

	requests        *prometheus.CounterVec
	tokens          *prometheus.CounterVec
	localTokens     *prometheus.CounterVec
	spend           *prometheus.CounterVec
	quotaExceeded   *prometheus.CounterVec
	rateLimited     *prometheus.CounterVec
	clamped         *prometheus.CounterVec
	drift           *prometheus.CounterVec
	excess          *prometheus.CounterVec
	excessTokens    *prometheus.CounterVec
	holdsOpen       prometheus.Gauge
	holdsExpired    prometheus.Counter
	requestDuration *prometheus.HistogramVec
	upstreamLatency *prometheus.HistogramVec
	ttft            *prometheus.HistogramVec
	redisLatency    *prometheus.HistogramVec
	redisErrors     *prometheus.CounterVec
	reloads         *prometheus.CounterVec
	// pay counts money coming in (payments.go).
	pay *paymentMetrics
	// admin counts the admin API's top-ups and adjustments (admin.go).
	admin *adminMetrics
	// archive follows the ledger archive's shipping (archive.go).
	archive *ArchiveMetrics
}

var _ proxy.Observer = (*Metrics)(nil)

// New builds the collectors and registers them on a new registry.
func New(o Options) (*Metrics, error) {
	m := &Metrics{reg: prometheus.NewRegistry(), pricing: o.Pricing}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	}
	m.requests = counter("requests_total",
		"Metered data-plane requests by endpoint, priced model and the HTTP status answered to the app (499: the app left first).",
		"endpoint", "model", "status")
	m.tokens = counter("tokens_total",
		"Billed tokens by model, class (input, cached_input, audio_input, output, reasoning, audio_output; cached and audio input are part of input, reasoning and audio output part of output) and source (upstream usage or local count).",
		"model", "class", "source")
	m.localTokens = counter("local_tokens_total",
		"creditgate's own token count of requests billed from upstream usage, by model and class (input, output): compare with creditgate_tokens_total{source=\"upstream\"} to see drift.",
		"model", "class")
	m.rateLimited = counter("rate_limited_total",
		"Requests refused by a rate limit (429 rate_limit_exceeded), by the limit's type: requests (RPM) or tokens (TPM).",
		"type")
	m.spend = counter("spend_micro_usd_total",
		"Money charged to accounts for settled requests, in micro-USD (1000000 = $1).",
		"model")
	m.quotaExceeded = counter("quota_exceeded_total",
		"Requests answered 429 insufficient_quota by creditgate, by reason: empty (no credit), expired (credit expired), insufficient (some credit, not enough for this request).",
		"reason")
	m.clamped = counter("clamped_total",
		"Requests whose output cap creditgate lowered to what the balance pays for.",
		"model")
	m.drift = counter("token_drift_total",
		"Requests whose upstream-reported tokens differ from the local count by more than metering.drift_tolerance.",
		"model")
	m.excess = counter("upstream_excess_micro_usd_total",
		"What upstreams claimed beyond what their requests could cost (reported usage, or output sent past the output cap), in micro-USD, by model: not charged to accounts; dispute it with the provider.",
		"model")
	m.excessTokens = counter("upstream_excess_tokens_total",
		"The tokens of creditgate_upstream_excess_micro_usd_total: claimed beyond the prompt as counted and the output cap sent, by model.",
		"model")
	m.holdsOpen = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "holds_open",
		Help: "Holds (reservations) this process has open: requests admitted and not yet settled or released."})
	m.holdsExpired = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "holds_expired_total",
		Help: "Holds that reached billing.hold_ttl unsettled (each has its hold_expired ledger event): requests admitted whose proxy died, or lost Redis without a spool, before settling. Counted by the proxy whose sweep reported them; sum over instances."})
	m.requestDuration = histogram("request_duration_seconds",
		"Whole data-plane requests, from arrival to settlement, by endpoint.",
		upstreamBuckets, "endpoint")
	m.upstreamLatency = histogram("upstream_duration_seconds",
		"Time from forwarding a request to the upstream's response headers, by endpoint and model.",
		upstreamBuckets, "endpoint", "model")
	m.ttft = histogram("time_to_first_token_seconds",
		"Time from a request's arrival to the first body byte sent to the app, by endpoint, model and stream (true/false).",
		ttftBuckets, "endpoint", "model", "stream")
	m.redisLatency = histogram("redis_command_duration_seconds",
		"Redis round trips by command (a Lua script is evalsha; a pipeline is \"pipeline\").",
		redisBuckets, "command")
	m.redisErrors = counter("redis_errors_total",
		"Failed Redis round trips by command and kind: timeout, network, server (an error reply) or dial. A missing key is not an error.",
		"command", "kind")
	m.reloads = counter("config_reloads_total",
		"Configuration file reloads by result: ok (applied) or failed (rejected; the running configuration stays in force).",
		"result")
	spoolDepth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "spool_depth",
		Help: "Settlements and releases the store refused, waiting in the spool to be replayed."},
		func() float64 {
			if f := m.spool.Load(); f != nil {
				return float64((*f)())
			}
			return 0
		})

	activityDropped := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: "activity_dropped_total",
		Help: "Events the console's aggregate across accounts (billing/activity) dropped because its queue was full: the overview and the recent requests miss them; the ledger does not."},
		func() float64 {
			if f := m.activityDropped.Load(); f != nil {
				return float64((*f)())
			}
			return 0
		})
	m.pay = newPaymentMetrics(counter)
	m.admin = newAdminMetrics(counter)
	cs := []prometheus.Collector{m.requests, m.tokens, m.localTokens, m.spend, m.quotaExceeded, m.rateLimited, m.clamped, m.drift,
		m.excess, m.excessTokens, m.holdsOpen, m.holdsExpired, m.requestDuration, m.upstreamLatency, m.ttft, m.redisLatency, m.redisErrors, m.reloads, spoolDepth, activityDropped}
	cs = append(cs, m.pay.collectors()...)
	cs = append(cs, m.admin.collectors()...)
	m.archive = newArchiveMetrics()
	cs = append(cs, m.archive.collectors()...)
	if !o.NoProcessMetrics {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Series that alerts divide by or take rate() of exist from the start, at 0.
	for _, r := range quotaReasons {
		m.quotaExceeded.WithLabelValues(r)
	}
	m.rateLimited.WithLabelValues(billing.RateLimitRequests)
	m.rateLimited.WithLabelValues(billing.RateLimitTokens)
	m.reloads.WithLabelValues(ReloadOK)
	m.reloads.WithLabelValues(ReloadFailed)
	return m, nil
}

// Registerer lets other packages add their own collectors to the same registry.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Gatherer is the registry, for tests and custom exporters.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the registry in the Prometheus exposition format (GET /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SetSpoolDepth installs the function creditgate_spool_depth reads at each
// scrape (the spool's number of pending entries). It must be cheap and must not
// block; until it is set the gauge reads 0.
func (m *Metrics) SetSpoolDepth(depth func() int) {
	if depth == nil {
		m.spool.Store(nil)
		return
	}
	m.spool.Store(&depth)
}

// SetActivityDropped installs the function creditgate_activity_dropped_total
// reads at each scrape (activity.Recorder.Dropped); until then it reads 0.
func (m *Metrics) SetActivityDropped(dropped func() int64) {
	if dropped == nil {
		m.activityDropped.Store(nil)
		return
	}
	m.activityDropped.Store(&dropped)
}

// ConfigReloaded counts one configuration reload: err nil means it was applied,
// otherwise it was rejected.
func (m *Metrics) ConfigReloaded(err error) {
	if err != nil {
		m.reloads.WithLabelValues(ReloadFailed).Inc()
		return
	}
	m.reloads.WithLabelValues(ReloadOK).Inc()
}

// HoldsExpired counts n holds that expired unsettled, as a sweep reported them
// (recharge.Options.OnHoldsExpired).
func (m *Metrics) HoldsExpired(n int) {
	if n > 0 {
		m.holdsExpired.Add(float64(n))
	}
}

// HoldOpened implements proxy.Observer.
func (m *Metrics) HoldOpened() { m.holdsOpen.Inc() }

// HoldClosed implements proxy.Observer.
func (m *Metrics) HoldClosed() { m.holdsOpen.Dec() }

// RequestDone implements proxy.Observer: it records one finished request.
func (m *Metrics) RequestDone(r proxy.Report) {
	endpoint := endpointLabel(r.Endpoint)
	model := m.modelLabel(r.Model)
	m.requests.WithLabelValues(endpoint, model, statusLabel(r.Status)).Inc()
	if r.Reason != "" {
		m.quotaExceeded.WithLabelValues(reasonLabel(r.Reason)).Inc()
	}
	if r.RateLimited != "" {
		m.rateLimited.WithLabelValues(rateTypeLabel(r.RateLimited)).Inc()
	}
	if r.Latency > 0 {
		m.requestDuration.WithLabelValues(endpoint).Observe(r.Latency.Seconds())
	}
	if r.TTFT > 0 {
		m.ttft.WithLabelValues(endpoint, model, strconv.FormatBool(r.Stream)).Observe(r.TTFT.Seconds())
	}
	if !r.Forwarded {
		return
	}
	if r.UpstreamTime > 0 {
		m.upstreamLatency.WithLabelValues(endpoint, model).Observe(r.UpstreamTime.Seconds())
	}
	source := sourceLabel(r.TokenSource)
	for _, c := range tokenClasses(r.Tokens) {
		if c.n > 0 {
			m.tokens.WithLabelValues(model, c.name, source).Add(float64(c.n))
		}
	}
	if r.TokenSource == billing.TokenSourceUpstream {
		if r.Local.Input > 0 {
			m.localTokens.WithLabelValues(model, "input").Add(float64(r.Local.Input))
		}
		if r.Local.Output > 0 {
			m.localTokens.WithLabelValues(model, "output").Add(float64(r.Local.Output))
		}
	}
	if r.Cost > 0 {
		m.spend.WithLabelValues(model).Add(float64(r.Cost))
	}
	if r.Clamped {
		m.clamped.WithLabelValues(model).Inc()
	}
	if r.Drift {
		m.drift.WithLabelValues(model).Inc()
	}
	if r.Excess > 0 {
		m.excess.WithLabelValues(model).Add(float64(r.Excess))
	}
	if r.ExcessTokens > 0 {
		m.excessTokens.WithLabelValues(model).Add(float64(r.ExcessTokens))
	}
}

type tokenClass struct {
	name string
	n    int64
}

func tokenClasses(t metering.Tokens) [6]tokenClass {
	return [6]tokenClass{
		{"input", t.Input}, {"cached_input", t.CachedInput}, {"audio_input", t.AudioInput},
		{"output", t.Output}, {"reasoning", t.Reasoning}, {"audio_output", t.AudioOutput},
	}
}

// modelSet is the set of priced model names of one *metering.Pricing, cached
// until a reload installs another.
type modelSet struct {
	pricing *metering.Pricing
	names   map[string]struct{}
}

// modelLabel returns model when the current price list has an entry for it,
// NoneLabel for "" and OtherLabel otherwise.
func (m *Metrics) modelLabel(model string) string {
	if model == "" {
		return NoneLabel
	}
	if m.pricing == nil {
		return OtherLabel
	}
	p := m.pricing()
	if p == nil {
		return OtherLabel
	}
	set := m.models.Load()
	if set == nil || set.pricing != p {
		names := p.Models()
		set = &modelSet{pricing: p, names: make(map[string]struct{}, len(names))}
		for _, n := range names {
			set.names[n] = struct{}{}
		}
		m.models.Store(set)
	}
	if _, ok := set.names[model]; ok {
		return model
	}
	return OtherLabel
}

// endpointLabel is the metered path without a trailing slash, or OtherLabel.
func endpointLabel(path string) string {
	if _, ok := metering.EndpointForPath(path); ok {
		return strings.TrimSuffix(path, "/")
	}
	return OtherLabel
}

func statusLabel(code int) string {
	if code < 100 || code > 599 {
		return OtherLabel
	}
	return strconv.Itoa(code)
}

func reasonLabel(reason string) string {
	for _, r := range quotaReasons {
		if reason == r {
			return r
		}
	}
	return OtherLabel
}

func sourceLabel(source string) string {
	switch source {
	case billing.TokenSourceUpstream, billing.TokenSourceLocal:
		return source
	}
	return OtherLabel
}

func rateTypeLabel(t string) string {
	if t == billing.RateLimitRequests || t == billing.RateLimitTokens {
		return t
	}
	return OtherLabel
}
