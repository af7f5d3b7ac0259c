package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

func TestPlainChatIsBilledByUpstreamUsage(t *testing.T) {
	h := newHarness(t)
	h.countPromptsAlways() // the local prompt count is recorded (metering.count_prompts: always)
	key := h.account("acme", "5.00")
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""), "X-Mock-Cached-Tokens", "10", "X-Mock-Reasoning-Tokens", "7")
	body := readAll(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	u := decodeUsage(t, body)
	if u.PromptTokensDetails.CachedTokens != 10 || u.CompletionTokensDetails.ReasoningTokens != 7 {
		t.Fatalf("mock usage %+v", u)
	}
	// Hand-computed: uncached input at 0.15, cached at 0.075, output (reasoning
	// included, at the same rate) at 0.60 USD per 1M tokens; ceil once.
	num := (u.PromptTokens-10)*150_000 + 10*75_000 + u.CompletionTokens*600_000
	want := (num + 999_999) / 1_000_000
	ev := h.lastEvent("acme")
	if ev.Type != billing.EventUsage || int64(ev.Cost) != want {
		t.Fatalf("event %+v, want cost %d", ev, want)
	}
	if ev.PromptTokens != u.PromptTokens || ev.CompletionTokens != u.CompletionTokens || ev.CachedTokens != 10 || ev.ReasoningTokens != 7 ||
		ev.TokenSource != billing.TokenSourceUpstream || ev.Model != "gpt-4o-mini" || ev.Endpoint != "/v1/chat/completions" {
		t.Fatalf("usage event %+v", ev)
	}
	// The local count is recorded next to the upstream's, for cross-checking.
	if ev.LocalPromptTokens <= 0 || ev.LocalCompletionTokens <= 0 {
		t.Fatalf("usage event lacks the local count: %+v", ev)
	}
	if id := res.Header.Get(RequestIDHeader); id == "" || ev.RequestID != id || ev.HoldID != id {
		t.Fatalf("request id header %q, event %q", id, ev.RequestID)
	}
	a := h.get("acme")
	if a.Balance() != usd("5.00")-ev.Cost || a.Reserved != 0 {
		t.Fatalf("account %+v", a)
	}
	logs := h.requestLogs()
	if len(logs) != 1 {
		t.Fatalf("%d request log lines, want 1", len(logs))
	}
	l := logs[0]
	for k, want := range map[string]any{"account": "acme", "model": "gpt-4o-mini", "status": int64(200), "token_source": "upstream",
		"prompt_tokens": u.PromptTokens, "cached_tokens": int64(10), "reasoning_tokens": int64(7), "cost": ev.Cost.String(), "balance_after": a.Balance().String()} {
		if l[k] != want {
			t.Errorf("log %s = %v (%T), want %v", k, l[k], l[k], want)
		}
	}
	for _, k := range []string{"key_id", "latency", "ttft", "local_prompt_tokens", "completion_tokens", "request_id"} {
		if _, ok := l[k]; !ok {
			t.Errorf("log line lacks %s: %v", k, l)
		}
	}
}

func TestStreamingChat(t *testing.T) {
	tests := []struct {
		name          string
		extra         string
		wantUsageSeen bool
	}{
		{name: "client did not ask for usage: hidden", extra: "", wantUsageSeen: false},
		{name: "client asked for usage: shown", extra: `"stream_options":{"include_usage":true}`, wantUsageSeen: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			key := h.account("acme", "5.00")
			res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", true, tc.extra))
			body := readAll(t, res)
			if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d %s: %s", res.StatusCode, res.Header.Get("Content-Type"), body)
			}
			events := sseEvents(body)
			if events[len(events)-1] != "[DONE]" {
				t.Fatalf("stream does not end with [DONE]: %q", events[len(events)-1])
			}
			var text strings.Builder
			usageSeen := false
			var usage chatUsage
			for _, e := range events[:len(events)-1] {
				var chunk struct {
					Choices []struct {
						Delta struct{ Content string } `json:"delta"`
					} `json:"choices"`
					Usage *chatUsage `json:"usage"`
				}
				if err := json.Unmarshal([]byte(e), &chunk); err != nil {
					t.Fatalf("chunk %q: %v", e, err)
				}
				for _, c := range chunk.Choices {
					text.WriteString(c.Delta.Content)
				}
				if chunk.Usage != nil {
					usageSeen, usage = true, *chunk.Usage
				}
			}
			if usageSeen != tc.wantUsageSeen {
				t.Fatalf("usage chunk seen = %v, want %v", usageSeen, tc.wantUsageSeen)
			}
			// Upstream was always asked for usage.
			up := h.mock.Requests()[0]
			if !strings.Contains(string(up.Body), `"include_usage":true`) {
				t.Fatalf("upstream body lacks include_usage: %s", up.Body)
			}
			ev := h.lastEvent("acme")
			if ev.TokenSource != billing.TokenSourceUpstream || ev.CompletionTokens == 0 {
				t.Fatalf("event %+v", ev)
			}
			tok, _ := metering.TokenizerFor(metering.O200kBase)
			if want := int64(tok.Count(text.String())); ev.CompletionTokens != want {
				t.Fatalf("billed %d completion tokens, the streamed text has %d", ev.CompletionTokens, want)
			}
			if usageSeen && (usage.CompletionTokens != ev.CompletionTokens || usage.PromptTokens != ev.PromptTokens) {
				t.Fatalf("usage shown %+v, billed %+v", usage, ev)
			}
			logs := h.requestLogs()
			if len(logs) != 1 || logs[0]["stream"] != true {
				t.Fatalf("logs %v", logs)
			}
			if _, ok := logs[0]["ttft"]; !ok {
				t.Fatalf("stream log lacks ttft: %v", logs[0])
			}
		})
	}
}

func TestModelsPassThrough(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	req, _ := http.NewRequest(http.MethodGet, h.server.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, res)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"object":"list"`) {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if n := len(h.events("acme")); n != 1 { // just the top-up
		t.Fatalf("the model list must not be metered: %d events", n)
	}
	res, _ = http.Get(h.server.URL + "/v1/models")
	if readAll(t, res); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a key: %d", res.StatusCode)
	}
}

func TestCreditsEndpoint(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00", "7.25")
	req, _ := http.NewRequest(http.MethodGet, h.server.URL+"/v1/credits", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, res)
	var v struct {
		Object, Account, Balance, Available, Debt, Grace string
		Grants                                           []struct {
			Amount, Remaining string
			ExpiresAt         string `json:"expires_at"`
		}
	}
	if err := json.Unmarshal(body, &v); err != nil || res.StatusCode != 200 {
		t.Fatalf("%d %s %v", res.StatusCode, body, err)
	}
	if v.Object != "credit_balance" || v.Account != "acme" || v.Balance != "12.250000" || v.Available != "12.250000" || v.Debt != "0.000000" || v.Grace != "0.500000" || len(v.Grants) != 2 || v.Grants[0].ExpiresAt == "" {
		t.Fatalf("credits %s", body)
	}
}
