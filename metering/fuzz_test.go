package metering

import (
	"encoding/json"
	"testing"
)

// FuzzParseRequest: ParseRequest never panics; whatever it accepts can be counted,
// and rewriting it gives valid JSON that parses again with the new cap.
func FuzzParseRequest(f *testing.F) {
	seeds := []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"n":2,"max_tokens":5,"messages":[{"role":"user","name":"x","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==","detail":"high"}}]}],"tools":[{"type":"function","function":{"name":"f","description":"d.","parameters":{"type":"object","properties":{"a":{"type":"string","enum":["x","y"]}}}}}]}`,
		`{"model":"gpt-4o","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]}`,
		`{"model":"davinci-002","prompt":[[1,2],[3]],"best_of":2,"n":1}`,
		`{"model":"text-embedding-3-small","input":["a","b"]}`,
		`{"model":"o3","instructions":"x","input":[{"role":"user","content":[{"type":"input_text","text":"a"}]},{"type":"function_call_output","call_id":"c","output":"y"}],"max_output_tokens":9}`,
		`{"model":"m","max\u005ftokens":1,"messages":[{"role":"\ud83d\ude00","content":"\u0000"}]}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`{"model":"m","messages":[{"role":"user","content":"\ud800"}]`,
		`{"model":1e400}`,
	}
	for _, s := range seeds {
		for _, ep := range []Endpoint{ChatCompletions, Completions, Embeddings, Responses} {
			f.Add(string(ep), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, ep string, body []byte) {
		r, err := ParseRequest(Endpoint(ep), body)
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error %T is not a *RequestError", err)
			}
			return
		}
		if r.Choices < 1 || r.MaxOutput < 0 {
			t.Fatalf("Choices %d, MaxOutput %d", r.Choices, r.MaxOutput)
		}
		if in := r.InputTokens(wordTokenizer); in.Input < 0 {
			t.Fatalf("negative input count %d", in.Input)
		}
		out, err := r.Rewrite(body, 7)
		if err != nil {
			t.Fatalf("Rewrite: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("Rewrite produced invalid JSON: %s", out)
		}
		r2, err := ParseRequest(Endpoint(ep), out)
		if err != nil {
			t.Fatalf("rewritten body does not parse: %v\n%s", err, out)
		}
		if r.capField() != "" && r2.MaxOutput != 7 {
			t.Fatalf("rewritten MaxOutput = %d, want 7\n%s", r2.MaxOutput, out)
		}
		if r2.Stream && (r2.Endpoint == ChatCompletions || r2.Endpoint == Completions) && !r2.IncludeUsage {
			t.Fatalf("rewritten stream request lacks include_usage\n%s", out)
		}
	})
}
