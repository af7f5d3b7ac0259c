package metering

import (
	"encoding/json"
	"testing"

	"pgregory.net/rapid"
)

// Every prefix of a plain body closes to valid JSON (or to nothing), and meters an
// output that grows with the prefix, up to the whole body's, never with the usage.
func TestPartialBodyPrefixes(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		ep      Endpoint
	}{
		{"chat_plain.json", ChatCompletions}, {"chat_plain_tool_calls.json", ChatCompletions},
		{"chat_plain_reasoning_n2.json", ChatCompletions}, {"completions_plain.json", Completions},
		{"responses_plain.json", Responses},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			body := fixture(t, tc.fixture)
			whole := NewResponseMeter(requestFor(t, tc.ep, false), wordTokenizer, input)
			whole.Body(body)
			full := whole.Result().Local.Output
			if full == 0 {
				t.Fatal("the fixture has no output to count")
			}
			last := int64(0)
			for n := range len(body) + 1 {
				if doc := closeTruncated(body[:n]); doc != nil && !json.Valid(doc) {
					t.Fatalf("prefix of %d bytes closed to invalid JSON:\n%s", n, doc)
				}
				m := NewResponseMeter(requestFor(t, tc.ep, false), wordTokenizer, input)
				m.PartialBody(body[:n])
				res := m.Result()
				if res.Done || res.Source != SourceLocal || res.Tokens.Input != input.Input {
					t.Fatalf("prefix of %d bytes: Result %+v, want the local count, not done", n, res)
				}
				// A word cut in two counts as two until its second part arrives.
				if out := res.Local.Output; out < last-1 || out > full+1 {
					t.Fatalf("prefix of %d bytes counts %d output tokens (previous %d, whole %d)", n, out, last, full)
				}
				last = res.Local.Output
			}
			if last != full {
				t.Fatalf("the whole body as a prefix counts %d, as a body %d", last, full)
			}
		})
	}
}

func TestCloseTruncated(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"choices":[{"message":{"content":"Hello wor`, `{"choices":[{"message":{"content":"Hello wor"}}]}`},
		{`{"choices":[{"message":{"content":"caf\u00`, `{"choices":[{"message":{"content":"caf"}}]}`},
		{"{\"a\":\"caf\xc3", `{"a":"caf"}`},
		{`{"a":[1,2,3`, `{"a":[1,2]}`},
		{`{"a":[1,2,3,`, `{"a":[1,2,3]}`},
		{`{"a":tru`, `{}`},
		{`{"a":"x","b`, `{"a":"x"}`},
		{`{"a":"x","b":`, `{"a":"x"}`},
		{`[`, `[]`},
		{`{"a":1}`, `{"a":1}`},
		{`}`, ``},
		{``, ``},
	} {
		if got := string(closeTruncated([]byte(tc.in))); got != tc.want {
			t.Errorf("closeTruncated(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever the bytes, closing them never panics and gives valid JSON or nothing
// when they are a prefix of valid JSON.
func TestCloseTruncatedProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.SampledFrom([]string{
			`{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"a \"b\" \u00e9 ☃ c"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}`,
			`{"output":[{"type":"message","content":[{"type":"output_text","text":"x\ny"}]},{"type":"function_call","name":"f","arguments":"{\"a\":[1,2.5e3,true,null]}"}]}`,
		}).Draw(t, "doc")
		n := rapid.IntRange(0, len(v)).Draw(t, "n")
		if doc := closeTruncated([]byte(v[:n])); doc != nil && !json.Valid(doc) {
			t.Fatalf("closeTruncated(%q) = %q, not JSON", v[:n], doc)
		}
		closeTruncated(rapid.SliceOf(rapid.Byte()).Draw(t, "bytes")) // must not panic
	})
}
