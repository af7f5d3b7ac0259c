package metrics_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/metrics"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/proxy"
)

// TestLabelsStayBounded: whatever reports the proxy produces (apps choose the
// model string, upstreams choose statuses), every label value comes from a fixed
// set or the price list, and the money and token totals are exact.
func TestLabelsStayBounded(t *testing.T) {
	priced := []string{"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"}
	pricing := testPricing(t, priced...)
	allowed := map[string][]string{
		"endpoint": {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "other"},
		"model":    append([]string{"other", "none"}, priced...),
		"reason":   {billing.ReasonEmpty, billing.ReasonExpired, billing.ReasonInsufficient, "other"},
		"class":    {"input", "cached_input", "audio_input", "output", "reasoning", "audio_output"},
		"source":   {"upstream", "local", "other"},
		"stream":   {"true", "false"},
	}
	statuses := []string{"other"}
	for c := 100; c <= 599; c++ {
		statuses = append(statuses, strconv.Itoa(c))
	}
	allowed["status"] = statuses

	rapid.Check(t, func(t *rapid.T) {
		m := newMetrics(t, func() *metering.Pricing { return pricing })
		// Mostly realistic values, sometimes anything at all.
		anyString := func(known []string) *rapid.Generator[string] {
			return rapid.OneOf(rapid.SampledFrom(known), rapid.String())
		}
		var spend, output float64
		n := rapid.IntRange(1, 30).Draw(t, "n")
		for range n {
			r := proxy.Report{
				Endpoint:    anyString([]string{"/v1/chat/completions", "/v1/embeddings/", "/v1/models", "/v1/responses"}).Draw(t, "endpoint"),
				Model:       anyString(append([]string{"", "mini", "gpt-4o-2024-08-06"}, priced...)).Draw(t, "model"),
				Status:      rapid.OneOf(rapid.IntRange(100, 599), rapid.Int()).Draw(t, "status"),
				Reason:      anyString([]string{"", billing.ReasonEmpty, billing.ReasonInsufficient}).Draw(t, "reason"),
				Stream:      rapid.Bool().Draw(t, "stream"),
				Forwarded:   rapid.Bool().Draw(t, "forwarded"),
				TokenSource: anyString([]string{billing.TokenSourceUpstream, billing.TokenSourceLocal}).Draw(t, "source"),
				Tokens: metering.Tokens{
					Input: rapid.Int64Range(0, 1<<20).Draw(t, "input"), Output: rapid.Int64Range(0, 1<<20).Draw(t, "output"),
					CachedInput: rapid.Int64Range(0, 1<<10).Draw(t, "cached"), Reasoning: rapid.Int64Range(0, 1<<10).Draw(t, "reasoning"),
				},
				Cost:         money.Micros(rapid.Int64Range(0, 1_000_000_000).Draw(t, "cost")),
				Latency:      time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "latency")),
				UpstreamTime: time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "upstream")),
				TTFT:         time.Duration(rapid.Int64Range(0, int64(time.Hour)).Draw(t, "ttft")),
			}
			if r.Forwarded {
				spend += float64(r.Cost)
				output += float64(r.Tokens.Output)
			}
			m.RequestDone(r)
		}
		for _, name := range []string{"creditgate_requests_total", "creditgate_tokens_total", "creditgate_spend_micro_usd_total",
			"creditgate_quota_exceeded_total", "creditgate_time_to_first_token_seconds", "creditgate_upstream_duration_seconds",
			"creditgate_request_duration_seconds"} {
			for label, ok := range allowed {
				for _, v := range labelValues(t, m.Gatherer(), name, label) {
					if !slices.Contains(ok, v) {
						t.Fatalf("%s has %s=%q", name, label, v)
					}
				}
			}
		}
		if got := sumOf(t, m, "creditgate_spend_micro_usd_total", ""); got != spend {
			t.Fatalf("spend %v, want %v", got, spend)
		}
		if got := sumOf(t, m, "creditgate_tokens_total", "output"); got != output {
			t.Fatalf("output tokens %v, want %v", got, output)
		}
	})
}

// sumOf adds the counters of name (restricted to class when non-empty).
func sumOf(t *rapid.T, m *metrics.Metrics, name, class string) float64 {
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, s := range f.GetMetric() {
			if class != "" {
				for _, l := range s.GetLabel() {
					if l.GetName() == "class" && l.GetValue() != class {
						continue metric
					}
				}
			}
			sum += s.GetCounter().GetValue()
		}
	}
	return sum
}
