package proxy

import (
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

// TestRecordedFixturesThroughProxy replays recorded response shapes of every
// endpoint (metering/testdata, secrets removed) from a real HTTP upstream through the
// proxy, and checks what each bills: the upstream's usage when the response carries
// one, the local count (token_source local) when it does not.
func TestRecordedFixturesThroughProxy(t *testing.T) {
	tests := []struct {
		fixture    string
		path       string
		model      string
		stream     bool
		want       metering.Tokens // billed, when from upstream usage
		wantSource string
	}{
		{fixture: "chat_plain.json", path: "/v1/chat/completions", model: "gpt-4o", want: metering.Tokens{Input: 1117, CachedInput: 1024, Output: 46}, wantSource: "upstream"},
		{fixture: "chat_plain_reasoning_n2.json", path: "/v1/chat/completions", model: "gpt-4o", want: metering.Tokens{Input: 2006, CachedInput: 1920, Output: 1300, Reasoning: 1024}, wantSource: "upstream"},
		{fixture: "chat_plain_tool_calls.json", path: "/v1/chat/completions", model: "gpt-4o", want: metering.Tokens{Input: 82, Output: 17}, wantSource: "upstream"},
		{fixture: "chat_plain_no_usage.json", path: "/v1/chat/completions", model: "gpt-4o", wantSource: "local"},
		{fixture: "chat_plain_absurd_usage.json", path: "/v1/chat/completions", model: "gpt-4o", wantSource: "local"},
		{fixture: "chat_stream_usage.sse", path: "/v1/chat/completions", model: "gpt-4o", stream: true, want: metering.Tokens{Input: 2006, CachedInput: 1920, Output: 300, Reasoning: 256}, wantSource: "upstream"},
		{fixture: "chat_stream_tools_n2.sse", path: "/v1/chat/completions", model: "gpt-4o", stream: true, want: metering.Tokens{Input: 90, Output: 25}, wantSource: "upstream"},
		{fixture: "chat_stream_azure.sse", path: "/v1/chat/completions", model: "gpt-4o", stream: true, want: metering.Tokens{Input: 20, Output: 4}, wantSource: "upstream"},
		{fixture: "chat_stream_no_usage.sse", path: "/v1/chat/completions", model: "gpt-4o", stream: true, wantSource: "local"},
		{fixture: "chat_stream_no_done.sse", path: "/v1/chat/completions", model: "gpt-4o", stream: true, wantSource: "local"},
		{fixture: "completions_plain.json", path: "/v1/completions", model: "gpt-4o", want: metering.Tokens{Input: 5, Output: 7}, wantSource: "upstream"},
		{fixture: "completions_stream.sse", path: "/v1/completions", model: "gpt-4o", stream: true, want: metering.Tokens{Input: 5, Output: 5}, wantSource: "upstream"},
		{fixture: "embeddings_plain.json", path: "/v1/embeddings", model: "text-embedding-3-small", want: metering.Tokens{Input: 8}, wantSource: "upstream"},
		{fixture: "responses_plain.json", path: "/v1/responses", model: "gpt-4o", want: metering.Tokens{Input: 328, CachedInput: 256, Output: 1052, Reasoning: 960}, wantSource: "upstream"},
		{fixture: "responses_stream.sse", path: "/v1/responses", model: "gpt-4o", stream: true, want: metering.Tokens{Input: 37, Output: 11}, wantSource: "upstream"},
		{fixture: "responses_stream_incomplete.sse", path: "/v1/responses", model: "gpt-4o", stream: true, want: metering.Tokens{Input: 1200, CachedInput: 1024, Output: 256, Reasoning: 256}, wantSource: "upstream"},
		{fixture: "responses_stream_tool.sse", path: "/v1/responses", model: "gpt-4o", stream: true, want: metering.Tokens{Input: 291, CachedInput: 128, Output: 150, Reasoning: 128}, wantSource: "upstream"},
		{fixture: "responses_stream_failed.sse", path: "/v1/responses", model: "gpt-4o", stream: true, wantSource: "local"},
		{fixture: "responses_stream_failed_usage.sse", path: "/v1/responses", model: "gpt-4o", stream: true, want: metering.Tokens{Input: 1536, CachedInput: 1280, Output: 420, Reasoning: 384}, wantSource: "upstream"},
	}
	// The upstream answers with the fixture named by the request's X-Fixture header.
	fixtures := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.Header.Get("X-Fixture"))
		b, err := os.ReadFile(filepath.Join("..", "metering", "testdata", name))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if strings.HasSuffix(name, ".sse") {
			w.Header().Set("Content-Type", "text/event-stream")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		w.Write(b)
	}))
	t.Cleanup(fixtures.Close)
	h := newHarness(t, func(o *Options) { o.Upstream, _ = url.Parse(fixtures.URL + "/v1") })

	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			account := strings.NewReplacer(".", "-", "_", "-").Replace(tc.fixture)
			key := h.account(account, "100.00")
			var body string
			switch tc.path {
			case "/v1/chat/completions":
				body = chatBody(tc.model, tc.stream, "")
			case "/v1/completions":
				body = `{"model":"` + tc.model + `","prompt":"Say this is a test","max_tokens":7` + streamField(tc.stream) + `}`
			case "/v1/embeddings":
				body = `{"model":"` + tc.model + `","input":"The food was delicious and the waiter..."}`
			case "/v1/responses":
				body = `{"model":"` + tc.model + `","input":"Tell me a three sentence bedtime story."` + streamField(tc.stream) + `}`
			}
			res := h.post(tc.path, key, body, "X-Fixture", tc.fixture)
			if got := readAll(t, res); res.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", res.StatusCode, got)
			}
			ev := h.lastEvent(account)
			if ev.Type != billing.EventUsage || ev.TokenSource != tc.wantSource {
				t.Fatalf("event %+v, want token source %s", ev, tc.wantSource)
			}
			if tc.wantSource == "local" {
				if ev.PromptTokens <= 0 || ev.Cost <= 0 {
					t.Fatalf("local count billed nothing: %+v", ev)
				}
				return
			}
			got := metering.Tokens{Input: ev.PromptTokens, CachedInput: ev.CachedTokens, Output: ev.CompletionTokens, Reasoning: ev.ReasoningTokens}
			if got != tc.want || ev.Cost != mustPrice(t, h, tc.model).Cost(tc.want) {
				t.Fatalf("billed %+v for %s, want %+v costing %s", ev, tc.fixture, tc.want, mustPrice(t, h, tc.model).Cost(tc.want))
			}
		})
	}
}

func streamField(stream bool) string {
	if stream {
		return `,"stream":true`
	}
	return ""
}
