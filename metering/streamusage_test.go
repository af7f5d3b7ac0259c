package metering

import (
	"strings"
	"testing"
)

// The proxy asks for stream usage exactly when the request needs it, the rewritten
// body then asks for it, and the meter hides exactly the usage chunk the proxy asked
// for: one that the client asked for itself reaches the client.
func TestStreamUsageAskedAndHiddenTogether(t *testing.T) {
	usageChunk := []byte(`{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`)
	tests := []struct {
		name string
		ep   Endpoint
		body string
		want bool // NeedsStreamUsage
	}{
		{"chat stream", ChatCompletions, `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"chat stream, include_usage false", ChatCompletions, `{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}`, true},
		{"chat stream, client asked", ChatCompletions, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, false},
		{"chat, not streamed", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, false},
		{"completions stream", Completions, `{"model":"m","stream":true,"prompt":"a"}`, true},
		{"completions stream, client asked", Completions, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"prompt":"a"}`, false},
		{"responses stream: always reports usage", Responses, `{"model":"m","stream":true,"input":"hi"}`, false},
		{"embeddings: no stream", Embeddings, `{"model":"m","stream":true,"input":"hi"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.ep, tc.body)
			if got := r.NeedsStreamUsage(); got != tc.want {
				t.Fatalf("NeedsStreamUsage = %v, want %v", got, tc.want)
			}
			out, err := r.Rewrite(r.body, 0)
			if err != nil {
				t.Fatal(err)
			}
			if asked := strings.Contains(string(out), `"include_usage":true`); asked != (tc.want || r.IncludeUsage) {
				t.Fatalf("rewritten body asks for usage: %v, want %v\n%s", asked, tc.want || r.IncludeUsage, out)
			}
			if tc.ep != ChatCompletions && tc.ep != Completions || !r.Stream {
				return
			}
			m := NewResponseMeter(r, nil, Tokens{})
			if forwarded := m.Event(usageChunk); forwarded == tc.want {
				t.Fatalf("usage chunk forwarded: %v, but the proxy asked for it: %v", forwarded, tc.want)
			}
			if res := m.Result(); res.Source != SourceUpstream || res.Tokens.Output != 2 {
				t.Fatalf("the usage chunk was not metered: %+v", res)
			}
		})
	}
}
