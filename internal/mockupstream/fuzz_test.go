package mockupstream_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

var fuzzPaths = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}

// FuzzRequestBody feeds any body to every endpoint: the mock must answer 200 with
// well-formed JSON or SSE, or 400 with OpenAI's error shape; never panic, never 500.
func FuzzRequestBody(f *testing.F) {
	for _, seed := range []struct {
		path uint8
		body string
	}{
		{0, chatBody},
		{0, streamBody},
		{0, `{"model":"gpt-4","n":2,"max_tokens":3,"messages":[{"role":"user","name":"x","content":[{"type":"text","text":"hi"}]}]}`},
		{0, `{"model":"gpt-4o","messages":[{"role":"user","content":null}]}`},
		{1, `{"model":"gpt-3.5-turbo-instruct","prompt":[[1,2],[3]],"stream":true}`},
		{1, `{"model":"gpt-3.5-turbo-instruct","prompt":["a","b"],"n":3}`},
		{2, `{"model":"text-embedding-3-small","input":["a",[1,2]],"encoding_format":"base64","dimensions":8}`},
		{2, `{"model":"text-embedding-3-large","input":[-1,0]}`},
		{3, `{"model":"gpt-4o-mini","input":[{"role":"user","content":"hi"},{"type":"reasoning"}],"stream":true,"max_output_tokens":2}`},
		{3, `{"model":"gpt-4o-mini","input":"hi","instructions":"be brief"}`},
		{0, `{"model":"\u0000\\u0000","stream":true,"messages":[{"role":"user","content":"\u0000"}]}`},
		{0, `{"model":`},
		{2, `[]`},
	} {
		f.Add(seed.path, seed.body)
	}
	s := mockupstream.New()
	s.MaxRecorded = 1
	f.Fuzz(func(t *testing.T, path uint8, body string) {
		target := fuzzPaths[int(path)%len(fuzzPaths)]
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, target, strings.NewReader(body)))
		data := rec.Body.Bytes()
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest:
			var e errorBody
			if err := json.Unmarshal(data, &e); err != nil || e.Error.Message == "" || e.Error.Type != "invalid_request_error" {
				t.Fatalf("400 body %s (%v)", data, err)
			}
			return
		default:
			t.Fatalf("status %d for %s %q: %s", rec.Code, target, body, data)
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream") {
			if !json.Valid(data) {
				t.Fatalf("invalid JSON: %s", data)
			}
			return
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		sc.Buffer(nil, len(data)+1)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok && d != "[DONE]" && !json.Valid([]byte(d)) {
				t.Fatalf("invalid event data %s", d)
			}
		}
	})
}

// For any length, limit, n and reasoning, the reported usage is the exact tiktoken count
// of the returned text plus the reasoning, and never more than the limit allows: the
// proxy's overdraft bound relies on actual output ≤ max tokens.
func TestUsageMatchesTextProperty(t *testing.T) {
	s := mockupstream.New()
	s.MaxRecorded = 1
	rapid.Check(t, func(t *rapid.T) {
		s.OutputTokens = rapid.IntRange(1, 64).Draw(t, "outputTokens")
		n := rapid.IntRange(1, 4).Draw(t, "n")
		limit := rapid.IntRange(1, 80).Draw(t, "limit")
		reasoning := rapid.IntRange(0, 40).Draw(t, "reasoning")
		cached := rapid.IntRange(0, 40).Draw(t, "cached")
		model := rapid.SampledFrom([]string{"gpt-4o-mini", "gpt-4"}).Draw(t, "model")
		prompt := rapid.StringMatching(`[a-zA-Z ,.!?]{1,40}`).Draw(t, "prompt")
		content, _ := json.Marshal(prompt)
		body := fmt.Sprintf(`{"model":%q,"n":%d,"max_completion_tokens":%d,"messages":[{"role":"user","content":%s}]}`, model, n, limit, content)
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("X-Mock-Reasoning-Tokens", fmt.Sprint(reasoning))
		req.Header.Set("X-Mock-Cached-Tokens", fmt.Sprint(cached))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var got chatCompletion
		strict(t, rec.Body.Bytes(), &got)
		u := got.Usage
		wantReasoning := int64(min(reasoning, limit))
		var text int64
		for _, c := range got.Choices {
			k := countTokens(t, model, c.Message.Content)
			text += k
			if wantLength := reasoning+s.OutputTokens > limit; (c.FinishReason == "length") != wantLength {
				t.Fatalf("finish %q with output %d + reasoning %d, limit %d", c.FinishReason, s.OutputTokens, reasoning, limit)
			}
			if int64(limit) < wantReasoning+k {
				t.Fatalf("choice of %d tokens + reasoning %d exceeds limit %d", k, wantReasoning, limit)
			}
		}
		if len(got.Choices) != n || u.CompletionTokens != text+wantReasoning || u.CompletionTokensDetails.ReasoningTokens != wantReasoning ||
			u.PromptTokens != chatPrompt(t, model, "user", prompt) || u.PromptTokensDetails.CachedTokens != min(int64(cached), u.PromptTokens) ||
			u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Fatalf("usage %+v for %d choices with %d text tokens", *u, len(got.Choices), text)
		}
	})
}

func benchmarkServe(b *testing.B, path, body string) {
	if err := mockupstream.Preload(); err != nil {
		b.Fatal(err)
	}
	s := mockupstream.New()
	s.MaxRecorded = 1000
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}

func BenchmarkChat(b *testing.B)       { benchmarkServe(b, "/v1/chat/completions", chatBody) }
func BenchmarkChatStream(b *testing.B) { benchmarkServe(b, "/v1/chat/completions", streamBody) }
func BenchmarkResponsesStream(b *testing.B) {
	benchmarkServe(b, "/v1/responses", `{"model":"gpt-4o-mini","input":"Hello!","stream":true}`)
}
func BenchmarkEmbedding(b *testing.B) {
	benchmarkServe(b, "/v1/embeddings", `{"model":"text-embedding-3-small","input":"Hello!"}`)
}

// BenchmarkChatStreamHTTP is the mock as the load benchmarks use it: over loopback HTTP.
func BenchmarkChatStreamHTTP(b *testing.B) {
	if err := mockupstream.Preload(); err != nil {
		b.Fatal(err)
	}
	s := mockupstream.New()
	s.MaxRecorded = 1000
	ts := httptest.NewServer(s)
	defer ts.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(streamBody))
			if err != nil {
				b.Fatal(err)
			}
			events, _ := readSSE(b, resp.Body)
			resp.Body.Close()
			if len(events) != streamEvents {
				b.Fatalf("%d events", len(events))
			}
		}
	})
}
