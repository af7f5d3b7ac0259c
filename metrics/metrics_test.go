package metrics_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/metrics"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/proxy"
)

// tb is what the helpers need of a *testing.T, *testing.B or *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
}

func testPricing(t tb, models ...string) *metering.Pricing {
	t.Helper()
	prices := map[string]metering.Price{}
	for _, m := range models {
		prices[m] = metering.Price{Input: 150000, CachedInput: 75000, Output: 600000, Reasoning: 600000}
	}
	fallback := metering.Price{Input: 1, Output: 1}
	p, err := metering.NewPricing(prices, map[string]string{"mini": models[0]}, &fallback)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newMetrics(t tb, pricing func() *metering.Pricing) *metrics.Metrics {
	t.Helper()
	m, err := metrics.New(metrics.Options{Pricing: pricing, NoProcessMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sample is the value of the series name{labels} (a histogram's sample count);
// -1 when the series does not exist.
func sample(t tb, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !labelsEqual(m.GetLabel(), labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

func labelsEqual(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}

// labelValues lists the values label takes across every series of name.
func labelValues(t tb, g prometheus.Gatherer, name, label string) []string {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && !slices.Contains(out, l.GetValue()) {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

type series struct {
	name   string
	labels map[string]string
	want   float64
}

func TestRequestDone(t *testing.T) {
	pricing := testPricing(t, "gpt-4o-mini", "gpt-4o")
	streamed := proxy.Report{
		Endpoint: "/v1/chat/completions", Model: "gpt-4o-mini", Stream: true, Status: 200, Forwarded: true, UpstreamStatus: 200,
		Tokens:      metering.Tokens{Input: 1200, CachedInput: 1000, Output: 300, Reasoning: 100},
		TokenSource: billing.TokenSourceUpstream, Local: metering.Tokens{Input: 1190, Output: 290},
		Cost: money.MustParse("0.000345"), Clamped: true, Drift: true,
		Latency: 2 * time.Second, UpstreamTime: 300 * time.Millisecond, TTFT: 350 * time.Millisecond,
	}
	tests := []struct {
		name   string
		report proxy.Report
		want   []series
	}{
		{
			name:   "streamed chat billed from upstream usage",
			report: streamed,
			want: []series{
				{"creditgate_requests_total", map[string]string{"endpoint": "/v1/chat/completions", "model": "gpt-4o-mini", "status": "200"}, 1},
				{"creditgate_tokens_total", map[string]string{"model": "gpt-4o-mini", "class": "input", "source": "upstream"}, 1200},
				{"creditgate_tokens_total", map[string]string{"model": "gpt-4o-mini", "class": "cached_input", "source": "upstream"}, 1000},
				{"creditgate_tokens_total", map[string]string{"model": "gpt-4o-mini", "class": "output", "source": "upstream"}, 300},
				{"creditgate_tokens_total", map[string]string{"model": "gpt-4o-mini", "class": "reasoning", "source": "upstream"}, 100},
				{"creditgate_tokens_total", map[string]string{"model": "gpt-4o-mini", "class": "audio_input", "source": "upstream"}, -1},
				{"creditgate_local_tokens_total", map[string]string{"model": "gpt-4o-mini", "class": "input"}, 1190},
				{"creditgate_local_tokens_total", map[string]string{"model": "gpt-4o-mini", "class": "output"}, 290},
				{"creditgate_spend_micro_usd_total", map[string]string{"model": "gpt-4o-mini"}, 345},
				{"creditgate_clamped_total", map[string]string{"model": "gpt-4o-mini"}, 1},
				{"creditgate_token_drift_total", map[string]string{"model": "gpt-4o-mini"}, 1},
				{"creditgate_upstream_excess_micro_usd_total", map[string]string{"model": "gpt-4o-mini"}, -1},
				{"creditgate_request_duration_seconds", map[string]string{"endpoint": "/v1/chat/completions"}, 1},
				{"creditgate_upstream_duration_seconds", map[string]string{"endpoint": "/v1/chat/completions", "model": "gpt-4o-mini"}, 1},
				{"creditgate_time_to_first_token_seconds", map[string]string{"endpoint": "/v1/chat/completions", "model": "gpt-4o-mini", "stream": "true"}, 1},
			},
		},
		{
			name: "abandoned stream billed from the local count: no local-vs-upstream series",
			report: proxy.Report{Endpoint: "/v1/responses/", Model: "gpt-4o", Stream: true, Status: 499, Forwarded: true,
				Tokens: metering.Tokens{Input: 10, Output: 5}, TokenSource: billing.TokenSourceLocal, Local: metering.Tokens{Input: 10, Output: 5},
				Cost: 7, Latency: time.Second, UpstreamTime: time.Millisecond},
			want: []series{
				{"creditgate_requests_total", map[string]string{"endpoint": "/v1/responses", "model": "gpt-4o", "status": "499"}, 1},
				{"creditgate_tokens_total", map[string]string{"model": "gpt-4o", "class": "output", "source": "local"}, 5},
				{"creditgate_local_tokens_total", map[string]string{"model": "gpt-4o", "class": "input"}, -1},
				{"creditgate_spend_micro_usd_total", map[string]string{"model": "gpt-4o"}, 7},
				{"creditgate_time_to_first_token_seconds", map[string]string{"endpoint": "/v1/responses", "model": "gpt-4o", "stream": "true"}, -1},
			},
		},
		{
			name: "an upstream that claimed more than the request could cost: the excess by model, apart from spend",
			report: proxy.Report{Endpoint: "/v1/chat/completions", Model: "gpt-4o", Stream: true, Status: 200, Forwarded: true,
				Tokens: metering.Tokens{Input: 30, Output: 16}, TokenSource: billing.TokenSourceUpstream, Local: metering.Tokens{Input: 30, Output: 16},
				Cost: 235, Excess: 49_840, ExcessTokens: 4984, Fault: "output_cap"},
			want: []series{
				{"creditgate_spend_micro_usd_total", map[string]string{"model": "gpt-4o"}, 235},
				{"creditgate_upstream_excess_micro_usd_total", map[string]string{"model": "gpt-4o"}, 49_840},
				{"creditgate_upstream_excess_tokens_total", map[string]string{"model": "gpt-4o"}, 4984},
				{"creditgate_tokens_total", map[string]string{"model": "gpt-4o", "class": "output", "source": "upstream"}, 16},
			},
		},
		{
			name:   "429 for expired credit",
			report: proxy.Report{Endpoint: "/v1/embeddings", Model: "gpt-4o", Status: 429, Reason: billing.ReasonExpired, Latency: time.Millisecond},
			want: []series{
				{"creditgate_requests_total", map[string]string{"endpoint": "/v1/embeddings", "model": "gpt-4o", "status": "429"}, 1},
				{"creditgate_quota_exceeded_total", map[string]string{"reason": "expired"}, 1},
				{"creditgate_quota_exceeded_total", map[string]string{"reason": "empty"}, 0},
				{"creditgate_spend_micro_usd_total", map[string]string{"model": "gpt-4o"}, -1},
				{"creditgate_upstream_duration_seconds", map[string]string{"endpoint": "/v1/embeddings", "model": "gpt-4o"}, -1},
			},
		},
		{
			name:   "401 before the model is known",
			report: proxy.Report{Endpoint: "/v1/completions", Status: 401},
			want: []series{
				{"creditgate_requests_total", map[string]string{"endpoint": "/v1/completions", "model": "none", "status": "401"}, 1},
				{"creditgate_request_duration_seconds", map[string]string{"endpoint": "/v1/completions"}, -1},
			},
		},
		{
			name: "a model priced only by pricing.default, an unknown path, status and reason",
			report: proxy.Report{Endpoint: "/v1/chat/completions/../../secret", Model: "made-up-model-1234", Status: 1000,
				Reason: "new-reason", Forwarded: true, Tokens: metering.Tokens{Input: 3}, TokenSource: "guess", Cost: 3},
			want: []series{
				{"creditgate_requests_total", map[string]string{"endpoint": "other", "model": "other", "status": "other"}, 1},
				{"creditgate_quota_exceeded_total", map[string]string{"reason": "other"}, 1},
				{"creditgate_tokens_total", map[string]string{"model": "other", "class": "input", "source": "other"}, 3},
				{"creditgate_spend_micro_usd_total", map[string]string{"model": "other"}, 3},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics(t, func() *metering.Pricing { return pricing })
			m.RequestDone(tc.report)
			for _, s := range tc.want {
				if got := sample(t, m.Gatherer(), s.name, s.labels); got != s.want {
					t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
				}
			}
		})
	}
}

func TestModelLabelFollowsReload(t *testing.T) {
	var current atomic.Pointer[metering.Pricing]
	current.Store(testPricing(t, "gpt-4o-mini"))
	m := newMetrics(t, current.Load)
	report := proxy.Report{Endpoint: "/v1/chat/completions", Model: "gpt-5", Status: 200}

	m.RequestDone(report)
	current.Store(testPricing(t, "gpt-4o-mini", "gpt-5")) // a reload adds a price for gpt-5
	m.RequestDone(report)
	current.Store(testPricing(t, "gpt-4o-mini")) // and a later one removes it
	m.RequestDone(report)

	if got := sample(t, m.Gatherer(), "creditgate_requests_total", map[string]string{"endpoint": "/v1/chat/completions", "model": "other", "status": "200"}); got != 2 {
		t.Errorf("requests as other = %v, want 2", got)
	}
	if got := sample(t, m.Gatherer(), "creditgate_requests_total", map[string]string{"endpoint": "/v1/chat/completions", "model": "gpt-5", "status": "200"}); got != 1 {
		t.Errorf("requests as gpt-5 = %v, want 1", got)
	}
}

func TestNilPricingMakesEveryModelOther(t *testing.T) {
	for _, pricing := range []func() *metering.Pricing{nil, func() *metering.Pricing { return nil }} {
		m := newMetrics(t, pricing)
		m.RequestDone(proxy.Report{Endpoint: "/v1/embeddings", Model: "text-embedding-3-small", Status: 200})
		if got := labelValues(t, m.Gatherer(), "creditgate_requests_total", "model"); !slices.Equal(got, []string{"other"}) {
			t.Errorf("model labels %v, want [other]", got)
		}
	}
}

func TestHoldsOpen(t *testing.T) {
	m := newMetrics(t, nil)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { m.HoldOpened() })
	}
	wg.Wait()
	for range 20 {
		wg.Go(func() { m.HoldClosed() })
	}
	wg.Wait()
	if got := sample(t, m.Gatherer(), "creditgate_holds_open", nil); got != 30 {
		t.Fatalf("holds open = %v, want 30", got)
	}
}

func TestConfigReloadsSpoolDepthAndExpiredHolds(t *testing.T) {
	m := newMetrics(t, nil)
	for _, s := range []series{
		{"creditgate_config_reloads_total", map[string]string{"result": "ok"}, 0},
		{"creditgate_config_reloads_total", map[string]string{"result": "failed"}, 0},
		{"creditgate_spool_depth", nil, 0},
		{"creditgate_holds_expired_total", nil, 0},
	} {
		if got := sample(t, m.Gatherer(), s.name, s.labels); got != s.want {
			t.Errorf("before anything: %s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	m.ConfigReloaded(nil)
	m.ConfigReloaded(nil)
	m.ConfigReloaded(errors.New("billing.grace: must not be negative"))
	depth := 7
	m.SetSpoolDepth(func() int { return depth })
	for _, s := range []series{
		{"creditgate_config_reloads_total", map[string]string{"result": "ok"}, 2},
		{"creditgate_config_reloads_total", map[string]string{"result": "failed"}, 1},
		{"creditgate_spool_depth", nil, 7},
	} {
		if got := sample(t, m.Gatherer(), s.name, s.labels); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	m.HoldsExpired(3)
	m.HoldsExpired(0)
	m.HoldsExpired(2)
	if got := sample(t, m.Gatherer(), "creditgate_holds_expired_total", nil); got != 5 {
		t.Errorf("holds expired = %v, want 5", got)
	}
	depth = 3 // read at each scrape
	if got := sample(t, m.Gatherer(), "creditgate_spool_depth", nil); got != 3 {
		t.Errorf("spool depth after change = %v, want 3", got)
	}
	m.SetSpoolDepth(nil)
	if got := sample(t, m.Gatherer(), "creditgate_spool_depth", nil); got != 0 {
		t.Errorf("spool depth after unset = %v, want 0", got)
	}
	if got := sample(t, m.Gatherer(), "creditgate_activity_dropped_total", nil); got != 0 {
		t.Errorf("activity dropped before it is set = %v, want 0", got)
	}
	dropped := int64(4)
	m.SetActivityDropped(func() int64 { return dropped })
	dropped = 9 // read at each scrape
	if got := sample(t, m.Gatherer(), "creditgate_activity_dropped_total", nil); got != 9 {
		t.Errorf("activity dropped = %v, want 9", got)
	}
}

func TestInstancesDoNotShareARegistry(t *testing.T) {
	a, b := newMetrics(t, nil), newMetrics(t, nil)
	a.HoldOpened()
	if got := sample(t, b.Gatherer(), "creditgate_holds_open", nil); got != 0 {
		t.Fatalf("second instance sees %v holds", got)
	}
	// Other packages can add their collectors.
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "creditgate_test_extra_total", Help: "test"})
	if err := a.Registerer().Register(extra); err != nil {
		t.Fatal(err)
	}
}

// TestHandler scrapes /metrics over HTTP with the process collectors on, and
// lints the names against Prometheus' conventions.
func TestHandler(t *testing.T) {
	m, err := metrics.New(metrics.Options{Pricing: func() *metering.Pricing { return testPricing(t, "gpt-4o-mini") }})
	if err != nil {
		t.Fatal(err)
	}
	m.RequestDone(proxy.Report{Endpoint: "/v1/chat/completions", Model: "gpt-4o-mini", Status: 200, Forwarded: true,
		Tokens: metering.Tokens{Input: 1, Output: 1}, TokenSource: billing.TokenSourceUpstream, Cost: 1, Latency: time.Millisecond, UpstreamTime: time.Millisecond})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`creditgate_requests_total{endpoint="/v1/chat/completions",model="gpt-4o-mini",status="200"} 1`,
		`# TYPE creditgate_upstream_duration_seconds histogram`,
		`creditgate_holds_open 0`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "creditgate_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// TestDocumented keeps docs/operations.md and the registry in step: every
// creditgate metric is documented, and every documented one exists.
func TestDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, name := range regexp.MustCompile("`(creditgate_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[name[1]] = true
	}
	m := newMetrics(t, nil)
	// Make every vector show up in the output.
	m.RequestDone(proxy.Report{Endpoint: "/v1/chat/completions", Model: "x", Status: 200, Forwarded: true, Stream: true,
		Tokens: metering.Tokens{Input: 1}, TokenSource: billing.TokenSourceUpstream, Local: metering.Tokens{Input: 1}, Cost: 1,
		Clamped: true, Drift: true, Excess: 1, ExcessTokens: 1, Latency: 1, UpstreamTime: 1, TTFT: 1})
	exercisePayments(m)
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, f := range families {
		registered[f.GetName()] = true
		if !documented[f.GetName()] {
			t.Errorf("%s is not documented in docs/operations.md", f.GetName())
		}
	}
	// The Redis metrics appear once a command ran.
	registered["creditgate_redis_command_duration_seconds"] = true
	registered["creditgate_redis_errors_total"] = true
	for name := range documented {
		if !registered[name] {
			t.Errorf("docs/operations.md documents %s, which does not exist", name)
		}
	}
}

func TestConcurrentRequestsAndReloads(t *testing.T) {
	var current atomic.Pointer[metering.Pricing]
	current.Store(testPricing(t, "a"))
	m := newMetrics(t, current.Load)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				m.HoldOpened()
				m.RequestDone(proxy.Report{Endpoint: "/v1/chat/completions", Model: "b", Status: 200, Forwarded: true, Cost: 1,
					Tokens: metering.Tokens{Output: 2}, TokenSource: billing.TokenSourceUpstream})
				m.HoldClosed()
			}
		})
		if i%2 == 0 {
			wg.Go(func() {
				for range 50 {
					current.Store(testPricing(t, "a", "b"))
				}
			})
		}
	}
	wg.Wait()
	total := sample(t, m.Gatherer(), "creditgate_spend_micro_usd_total", map[string]string{"model": "b"})
	other := sample(t, m.Gatherer(), "creditgate_spend_micro_usd_total", map[string]string{"model": "other"})
	if max(total, 0)+max(other, 0) != 1600 {
		t.Fatalf("spend b=%v other=%v, want 1600 in all", total, other)
	}
	if got := sample(t, m.Gatherer(), "creditgate_holds_open", nil); got != 0 {
		t.Fatalf("holds open %v", got)
	}
}

func BenchmarkRequestDone(b *testing.B) {
	pricing := testPricing(b, "gpt-4o-mini")
	m := newMetrics(b, func() *metering.Pricing { return pricing })
	r := proxy.Report{Endpoint: "/v1/chat/completions", Model: "gpt-4o-mini", Stream: true, Status: 200, Forwarded: true,
		Tokens: metering.Tokens{Input: 1200, CachedInput: 1000, Output: 300}, TokenSource: billing.TokenSourceUpstream,
		Local: metering.Tokens{Input: 1190, Output: 290}, Cost: 345, Latency: time.Second, UpstreamTime: time.Millisecond, TTFT: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.HoldOpened()
			m.RequestDone(r)
			m.HoldClosed()
		}
	})
}
