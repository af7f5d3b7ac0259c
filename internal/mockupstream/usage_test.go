package mockupstream_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

// X-Mock-Prompt-Tokens and X-Mock-Completion-Tokens (and the Behavior hook's fields)
// change the usage the mock reports, on every endpoint and in streams, but not the
// text it generates; the cached and reasoning details stay within the reported counts.
func TestUsageOverride(t *testing.T) {
	const chat = `{"model":"gpt-4o-mini","messages":` + helloMessages + `}`
	for _, tc := range []struct {
		name        string
		path, body  string
		headers     []string
		hook        mockupstream.Behavior
		wantPrompt  int64
		wantOut     int64 // -1: no output (embeddings)
		wantCached  int64
		wantReason  int64
		wantPieces  int // generated words (tokens) in the text, unchanged by the override
		stream      bool
		responseAPI bool
	}{
		{name: "chat prompt", path: "/v1/chat/completions", body: chat, headers: []string{"X-Mock-Prompt-Tokens: 500"},
			wantPrompt: 500, wantOut: 16, wantPieces: 16},
		{name: "chat completion", path: "/v1/chat/completions", body: chat, headers: []string{"X-Mock-Completion-Tokens: 3"},
			wantPrompt: 19, wantOut: 3, wantPieces: 16},
		{name: "chat both, details capped", path: "/v1/chat/completions", body: chat,
			headers:    []string{"X-Mock-Prompt-Tokens: 5", "X-Mock-Completion-Tokens: 2", "X-Mock-Cached-Tokens: 9", "X-Mock-Reasoning-Tokens: 4"},
			wantPrompt: 5, wantOut: 2, wantCached: 5, wantReason: 2, wantPieces: 16},
		{name: "chat by hook", path: "/v1/chat/completions", body: chat, hook: mockupstream.Behavior{PromptTokens: 77, CompletionTokens: 8},
			wantPrompt: 77, wantOut: 8, wantPieces: 16},
		{name: "header overrides hook", path: "/v1/chat/completions", body: chat, hook: mockupstream.Behavior{PromptTokens: 77},
			headers: []string{"X-Mock-Prompt-Tokens: 78"}, wantPrompt: 78, wantOut: 16, wantPieces: 16},
		{name: "chat stream", path: "/v1/chat/completions", stream: true,
			body:    `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":` + helloMessages + `}`,
			headers: []string{"X-Mock-Prompt-Tokens: 40", "X-Mock-Completion-Tokens: 30"}, wantPrompt: 40, wantOut: 30, wantPieces: 16},
		{name: "completions", path: "/v1/completions", body: `{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test"}`,
			headers: []string{"X-Mock-Prompt-Tokens: 12", "X-Mock-Completion-Tokens: 13"}, wantPrompt: 12, wantOut: 13, wantPieces: 16},
		{name: "embeddings", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":"hello"}`,
			headers: []string{"X-Mock-Prompt-Tokens: 1234"}, wantPrompt: 1234, wantOut: -1},
		{name: "responses", path: "/v1/responses", body: `{"model":"gpt-4o-mini","input":"Hello!"}`, responseAPI: true,
			headers: []string{"X-Mock-Prompt-Tokens: 60", "X-Mock-Completion-Tokens: 61"}, wantPrompt: 60, wantOut: 61, wantPieces: 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, func(s *mockupstream.Server) {
				s.Behavior = func(*http.Request, []byte) mockupstream.Behavior { return tc.hook }
			})
			resp := post(t, context.Background(), ts.URL+tc.path, tc.body, tc.headers...)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, readAll(t, resp))
			}
			var prompt, out, cached, reasoning int64
			var text string
			switch {
			case tc.stream:
				events, err := readSSE(t, resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				var u *usage
				for _, ev := range events {
					if ev.Data == "[DONE]" {
						continue
					}
					var c chatChunk
					strict(t, []byte(ev.Data), &c)
					for _, ch := range c.Choices {
						if ch.Delta.Content != nil {
							text += *ch.Delta.Content
						}
					}
					if c.Usage != nil {
						u = c.Usage
					}
				}
				if u == nil {
					t.Fatal("no usage chunk")
				}
				prompt, out, cached, reasoning = u.PromptTokens, u.CompletionTokens, u.PromptTokensDetails.CachedTokens, u.CompletionTokensDetails.ReasoningTokens
			case tc.responseAPI:
				var r response
				strict(t, readAll(t, resp), &r)
				if r.Usage == nil {
					t.Fatal("no usage")
				}
				u := r.Usage
				prompt, out, cached, reasoning = u.InputTokens, u.OutputTokens, u.InputTokensDetails.CachedTokens, u.OutputTokensDetails.ReasoningTokens
				if u.TotalTokens != prompt+out {
					t.Errorf("total %d, want %d", u.TotalTokens, prompt+out)
				}
				for _, it := range r.Output {
					for _, c := range it.Content {
						text += c.Text
					}
				}
			case tc.wantOut < 0:
				var e embeddingList
				strict(t, readAll(t, resp), &e)
				if e.Usage == nil || e.Usage.TotalTokens != e.Usage.PromptTokens {
					t.Fatalf("usage %+v", e.Usage)
				}
				prompt, out = e.Usage.PromptTokens, -1
			default:
				var body struct {
					Choices []struct {
						Text    string                   `json:"text"`
						Message struct{ Content string } `json:"message"`
					} `json:"choices"`
					Usage *usage `json:"usage"`
				}
				if err := json.Unmarshal(readAll(t, resp), &body); err != nil || body.Usage == nil || len(body.Choices) != 1 {
					t.Fatalf("body %+v: %v", body, err)
				}
				u := body.Usage
				prompt, out, cached, reasoning = u.PromptTokens, u.CompletionTokens, u.PromptTokensDetails.CachedTokens, u.CompletionTokensDetails.ReasoningTokens
				if u.TotalTokens != prompt+out {
					t.Errorf("total %d, want %d", u.TotalTokens, prompt+out)
				}
				text = body.Choices[0].Text + body.Choices[0].Message.Content
			}
			if prompt != tc.wantPrompt || out != tc.wantOut || cached != tc.wantCached || reasoning != tc.wantReason {
				t.Errorf("usage prompt %d output %d cached %d reasoning %d, want %d %d %d %d",
					prompt, out, cached, reasoning, tc.wantPrompt, tc.wantOut, tc.wantCached, tc.wantReason)
			}
			if tc.wantPieces > 0 {
				var model struct{ Model string }
				json.Unmarshal([]byte(tc.body), &model)
				if n := countTokens(t, model.Model, text); n != int64(tc.wantPieces) {
					t.Errorf("generated %d tokens (%q), want %d: the override must not change the text", n, text, tc.wantPieces)
				}
			}
		})
	}
}

func TestUsageOverrideBadHeader(t *testing.T) {
	_, ts := start(t, nil)
	for _, h := range []string{"X-Mock-Prompt-Tokens: -1", "X-Mock-Completion-Tokens: many"} {
		resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", `{"model":"gpt-4o-mini","messages":`+helloMessages+`}`, h)
		body := readAll(t, resp)
		name, _, _ := strings.Cut(h, ":")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), name) {
			t.Errorf("%s: status %d %s, want 400 naming the header", h, resp.StatusCode, body)
		}
	}
}

// A 4 MiB prompt without a space is one pre-tokenized piece; pkoukk/tiktoken-go's
// quadratic merge took minutes on it (and kept a core busy after the client left).
// The mock must answer it, with the exact count. A run of "a" is one token per eight
// letters in both encodings: tiktoken-go's own encoder shows it on 8 KiB (where it is
// still fast), and the 4 MiB expectation extrapolates that, independently of the
// counter the mock uses. The 60 s deadline only guards against a hang; nothing is
// timed.
func TestLongPromptWithoutSpaces(t *testing.T) {
	const size = 4 << 20
	for _, enc := range []string{"o200k_base", "cl100k_base"} {
		ref, err := mockupstream.ReferenceTokenizer(enc)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(ref.EncodeOrdinary(strings.Repeat("a", 8<<10))); got != (8<<10)/8 {
			t.Fatalf("%s: tiktoken-go counts %d tokens in 8 KiB of \"a\", the test assumes %d", enc, got, (8<<10)/8)
		}
	}
	run := strings.Repeat("a", size)
	const runTokens = size / 8
	for _, tc := range []struct {
		name, path, body string
		wantPrompt       int64
		responses        bool
	}{
		{"completions o200k", "/v1/completions", `{"model":"gpt-4o-mini","max_tokens":4,"prompt":"` + run + `"}`, runTokens, false},
		{"completions cl100k", "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","max_tokens":4,"prompt":"` + run + `"}`, runTokens, false},
		// priming 3 + message 3 + "user" 1 + the run
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":4,"messages":[{"role":"user","content":"` + run + `"}]}`, 3 + 3 + 1 + runTokens, false},
		{"embeddings", "/v1/embeddings", `{"model":"text-embedding-3-small","input":"` + run + `"}`, runTokens, false},
		{"responses", "/v1/responses", `{"model":"gpt-4o-mini","max_output_tokens":4,"input":[{"role":"user","content":"` + run + `"}]}`, 3 + 3 + 1 + runTokens, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			resp := post(t, ctx, ts.URL+tc.path, tc.body)
			data := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %.300s", resp.StatusCode, data)
			}
			var body struct {
				Usage struct {
					PromptTokens int64 `json:"prompt_tokens"`
					InputTokens  int64 `json:"input_tokens"`
				} `json:"usage"`
			}
			if err := json.Unmarshal(data, &body); err != nil {
				t.Fatal(err)
			}
			got := body.Usage.PromptTokens
			if tc.responses {
				got = body.Usage.InputTokens
			}
			if got != tc.wantPrompt {
				t.Errorf("prompt tokens %d, want %d", got, tc.wantPrompt)
			}
		})
	}
}
