package proxy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// TestResponsesFailedWithUsageBilled: a Responses API answer that ends in
// response.failed but reports usage (metering/testdata/responses_stream_failed_usage.sse,
// the shape of OpenAI's events) is billed by that usage, cached input and reasoning
// output at their own rates, whether it comes as a stream or as a plain body (the
// failed event's response object). The reasoning rate differs from the output rate
// here so that billing reasoning as plain output would show; the expected cost is
// worked out by hand.
func TestResponsesFailedWithUsageBilled(t *testing.T) {
	const fixture = "responses_stream_failed_usage.sse"
	stream, err := os.ReadFile(filepath.Join("..", "metering", "testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	// The plain body is the response object of the final (response.failed) event.
	events := sseEvents(stream)
	last := events[len(events)-1]
	i := strings.Index(last, `"response":`)
	if !strings.Contains(last, `"type":"response.failed"`) || i < 0 {
		t.Fatalf("the fixture's last event is not response.failed: %.80s", last)
	}
	plain := []byte(strings.TrimSuffix(last[i+len(`"response":`):], "}"))
	if !bytes.HasPrefix(plain, []byte(`{"id":"resp_5"`)) || !bytes.HasSuffix(plain, []byte(`"metadata":{}}`)) {
		t.Fatalf("could not cut the response object out of %.80s…", last)
	}

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Plain") != "" {
			w.Header().Set("Content-Type", "application/json")
			w.Write(plain)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(stream)
	}))
	t.Cleanup(upstream.Close)
	h := newHarness(t, func(o *Options) { o.Upstream, _ = url.Parse(upstream.URL + "/v1") })
	p, err := metering.NewPricing(map[string]metering.Price{
		"o4-mini": {Input: usd("2.50"), CachedInput: usd("1.25"), AudioInput: usd("2.50"), Output: usd("10.00"), Reasoning: usd("12.00"), AudioOutput: usd("10.00"), MaxOutputTokens: 4096},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := *h.settings.Load()
	s.Pricing = p
	h.settings.Store(&s)

	// usage: input 1536 of which 1280 cached, output 420 of which 384 reasoning.
	want := metering.Tokens{Input: 1536, CachedInput: 1280, Output: 420, Reasoning: 384}
	// (1536−1280)×2.50 + 1280×1.25 + (420−384)×10 + 384×12 micro-USD
	// = 640 + 1600 + 360 + 4608 = 7208 micro-USD.
	wantCost := usd("0.007208")

	for _, tc := range []struct {
		name   string
		stream bool
	}{{"stream", true}, {"plain", false}} {
		t.Run(tc.name, func(t *testing.T) {
			account := "failed-usage-" + tc.name
			key := h.account(account, "10.00")
			body := `{"model":"o4-mini","input":"Explain the proof."` + streamField(tc.stream) + `}`
			var header []string
			if !tc.stream {
				header = []string{"X-Plain", "1"}
			}
			res := h.post("/v1/responses", key, body, header...)
			got := readAll(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", res.StatusCode, got)
			}
			if tc.stream && !bytes.Equal(got, stream) {
				t.Errorf("the stream was not relayed as sent:\n%s", got)
			}
			ev := h.lastEvent(account)
			billed := metering.Tokens{Input: ev.PromptTokens, CachedInput: ev.CachedTokens, Output: ev.CompletionTokens, Reasoning: ev.ReasoningTokens}
			if ev.Type != billing.EventUsage || ev.TokenSource != billing.TokenSourceUpstream || billed != want {
				t.Fatalf("event %+v: billed %+v from %s, want %+v from upstream", ev, billed, ev.TokenSource, want)
			}
			if ev.Cost != wantCost || mustPrice(t, h, "o4-mini").Cost(want) != wantCost {
				t.Errorf("cost %s, want %s", ev.Cost, wantCost)
			}
			if a := h.get(account); a.Credit != usd("10.00")-wantCost || a.Reserved != 0 {
				t.Errorf("account credit %s reserved %s, want %s and 0", a.Credit, a.Reserved, usd("10.00")-wantCost)
			}
		})
	}
}
