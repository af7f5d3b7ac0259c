package metering

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// input is the local input estimate every fixture test starts from.
var input = Tokens{Input: 100}

type meterCase struct {
	fixture      string
	ep           Endpoint
	includeUsage bool // the client asked for stream usage
	want         Result
}

// Local outputs are counted with wordTokenizer (whitespace-separated words), so the
// expected counts can be checked by eye against the fixtures.
var meterCases = []meterCase{
	{"chat_plain.json", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 1117, CachedInput: 1024, Output: 46}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 13}, Done: true, Status: "stop"}},
	{"chat_plain_reasoning_n2.json", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 2006, CachedInput: 1920, Output: 1300, Reasoning: 1024}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 6 + 3}, Done: true, Status: "length"}},
	{"chat_plain_tool_calls.json", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 82, Output: 17}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 1 + 5}, Done: true, Status: "tool_calls"}},
	{"chat_plain_no_usage.json", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 100, Output: 6}, Source: SourceLocal,
		Local: Tokens{Input: 100, Output: 6}, Done: true, Status: "stop"}},
	{"chat_plain_absurd_usage.json", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 100, Output: 4}, Source: SourceLocal,
		Local: Tokens{Input: 100, Output: 4}, Done: true, Status: "stop"}},
	{"chat_stream_usage.sse", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 2006, CachedInput: 1920, Output: 300, Reasoning: 256}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 4}, Done: true, Status: "stop"}},
	{"chat_stream_usage.sse", ChatCompletions, true, Result{
		Tokens: Tokens{Input: 2006, CachedInput: 1920, Output: 300, Reasoning: 256}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 4}, Done: true, Status: "stop"}},
	{"chat_stream_no_usage.sse", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 100, Output: 3}, Source: SourceLocal,
		Local: Tokens{Input: 100, Output: 3}, Done: true, Status: "length"}},
	{"chat_stream_no_done.sse", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 100, Output: 4}, Source: SourceLocal,
		Local: Tokens{Input: 100, Output: 4}, Done: false, Status: ""}},
	{"chat_stream_tools_n2.sse", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 90, Output: 25}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: (1 + 3) + (2 + 2)}, Done: true, Status: "tool_calls"}},
	{"chat_stream_azure.sse", ChatCompletions, false, Result{
		Tokens: Tokens{Input: 20, Output: 4}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 3}, Done: true, Status: "stop"}},
	{"completions_plain.json", Completions, false, Result{
		Tokens: Tokens{Input: 5, Output: 7}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 5}, Done: true, Status: "length"}},
	{"completions_stream.sse", Completions, false, Result{
		Tokens: Tokens{Input: 5, Output: 5}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 4}, Done: true, Status: "stop"}},
	{"embeddings_plain.json", Embeddings, false, Result{
		Tokens: Tokens{Input: 8}, Source: SourceUpstream,
		Local: Tokens{Input: 100}, Done: true}},
	{"responses_plain.json", Responses, false, Result{
		Tokens: Tokens{Input: 328, CachedInput: 256, Output: 1052, Reasoning: 960}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 4 + 8 + 1 + 2}, Done: true, Status: "completed"}},
	{"responses_stream.sse", Responses, false, Result{
		Tokens: Tokens{Input: 37, Output: 11}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 6}, Done: true, Status: "completed"}},
	{"responses_stream_tool.sse", Responses, false, Result{
		Tokens: Tokens{Input: 291, CachedInput: 128, Output: 150, Reasoning: 128}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 3 + 1 + 2}, Done: true, Status: "completed"}},
	{"responses_stream_incomplete.sse", Responses, false, Result{
		Tokens: Tokens{Input: 1200, CachedInput: 1024, Output: 256, Reasoning: 256}, Source: SourceUpstream,
		Local: Tokens{Input: 100}, Done: true, Status: "incomplete"}},
	{"responses_stream_failed.sse", Responses, false, Result{
		Tokens: Tokens{Input: 100, Output: 2}, Source: SourceLocal,
		Local: Tokens{Input: 100, Output: 2}, Done: true, Status: "failed"}},
	// A failed response that reports usage (the model had worked before it failed) is
	// billed by that usage, cached and reasoning details included.
	{"responses_stream_failed_usage.sse", Responses, false, Result{
		Tokens: Tokens{Input: 1536, CachedInput: 1280, Output: 420, Reasoning: 384}, Source: SourceUpstream,
		Local: Tokens{Input: 100, Output: 6}, Done: true, Status: "failed"}},
}

// requestFor is a parsed request of endpoint ep with the given include_usage.
func requestFor(t fataler, ep Endpoint, includeUsage bool) *Request {
	t.Helper()
	body := map[Endpoint]string{
		ChatCompletions: `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		Completions:     `{"model":"gpt-3.5-turbo-instruct","stream":true,"prompt":"hi"}`,
		Embeddings:      `{"model":"text-embedding-3-small","input":"hi"}`,
		Responses:       `{"model":"gpt-4.1","stream":true,"input":"hi"}`,
	}[ep]
	if includeUsage {
		body = strings.Replace(body, `"stream":true`, `"stream":true,"stream_options":{"include_usage":true}`, 1)
	}
	return mustParse(t, ep, body)
}

// isUsageChunk reports whether an SSE event is the usage-only chunk.
func isUsageChunk(ev string) bool {
	return strings.Contains(ev, `"choices":[]`) && strings.Contains(ev, `"usage":{"`)
}

// wantForwarded is the stream less the events the filter must hide.
func wantForwarded(stream string, includeUsage bool) string {
	if includeUsage {
		return stream
	}
	var out strings.Builder
	for _, ev := range strings.SplitAfter(stream, "\n\n") {
		if !isUsageChunk(ev) {
			out.WriteString(ev)
		}
	}
	return out.String()
}

func TestResponseMeterFixtures(t *testing.T) {
	for _, tc := range meterCases {
		name := tc.fixture
		if tc.includeUsage {
			name += "/include_usage"
		}
		t.Run(name, func(t *testing.T) {
			data := fixture(t, tc.fixture)
			m := NewResponseMeter(requestFor(t, tc.ep, tc.includeUsage), wordTokenizer, input)
			if strings.HasSuffix(tc.fixture, ".json") {
				m.Body(data)
			} else {
				out, err := io.ReadAll(NewStreamFilter(io.NopCloser(bytes.NewReader(data)), m))
				if err != nil {
					t.Fatal(err)
				}
				if want := wantForwarded(string(data), tc.includeUsage); string(out) != want {
					t.Errorf("forwarded:\n%s\nwant:\n%s", out, want)
				}
			}
			if got := m.Result(); got != tc.want {
				t.Errorf("Result =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

// The same streams with CRLF and with CR line endings meter and forward the same way.
func TestStreamFilterLineEndings(t *testing.T) {
	for _, tc := range meterCases {
		if !strings.HasSuffix(tc.fixture, ".sse") {
			continue
		}
		for _, eol := range []string{"\r\n", "\r"} {
			data := strings.ReplaceAll(string(fixture(t, tc.fixture)), "\n", eol)
			m := NewResponseMeter(requestFor(t, tc.ep, tc.includeUsage), wordTokenizer, input)
			out, err := io.ReadAll(NewStreamFilter(io.NopCloser(strings.NewReader(data)), m))
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(wantForwarded(string(fixture(t, tc.fixture)), tc.includeUsage), "\n", eol)
			if string(out) != want {
				t.Errorf("%s with %q: forwarded\n%q\nwant\n%q", tc.fixture, eol, out, want)
			}
			if got := m.Result(); got != tc.want {
				t.Errorf("%s with %q: Result = %+v, want %+v", tc.fixture, eol, got, tc.want)
			}
		}
	}
}

// Event answers false only for the usage-only chunk, and only when the client did
// not ask for usage.
func TestEventHidesUsageChunkIffNotAsked(t *testing.T) {
	usage := []byte(`{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`)
	tests := []struct {
		name         string
		ep           Endpoint
		data         string
		includeUsage bool
		want         bool
	}{
		{"usage chunk, not asked", ChatCompletions, string(usage), false, false},
		{"usage chunk, asked", ChatCompletions, string(usage), true, true},
		{"completions usage chunk, not asked", Completions, string(usage), false, false},
		{"empty choices without usage", ChatCompletions, `{"choices":[],"prompt_filter_results":[]}`, false, true},
		{"empty choices, null usage", ChatCompletions, `{"choices":[],"usage":null}`, false, true},
		{"usage with content", ChatCompletions, `{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, false, true},
		{"content chunk", ChatCompletions, `{"choices":[{"index":0,"delta":{"content":"x"}}]}`, false, true},
		{"done", ChatCompletions, `[DONE]`, false, true},
		{"not JSON", ChatCompletions, `hello`, false, true},
		{"invalid JSON", ChatCompletions, `{"choices":[`, false, true},
		{"responses completed", Responses, `{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":1}}}`, false, true},
	}
	for _, tt := range tests {
		m := NewResponseMeter(requestFor(t, tt.ep, tt.includeUsage), wordTokenizer, input)
		if got := m.Event([]byte(tt.data)); got != tt.want {
			t.Errorf("%s: Event = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestUsageParsing(t *testing.T) {
	tests := []struct {
		name string
		ep   Endpoint
		body string
		want Tokens
		ok   bool
	}{
		{"all classes", ChatCompletions, `{"usage":{"prompt_tokens":100,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":60,"audio_tokens":10},"completion_tokens_details":{"reasoning_tokens":20,"audio_tokens":5}}}`,
			Tokens{Input: 100, CachedInput: 60, AudioInput: 10, Output: 50, Reasoning: 20, AudioOutput: 5}, true},
		{"responses naming", Responses, `{"usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":60},"output_tokens":50,"output_tokens_details":{"reasoning_tokens":20}}}`,
			Tokens{Input: 100, CachedInput: 60, Output: 50, Reasoning: 20}, true},
		{"output from total", ChatCompletions, `{"usage":{"prompt_tokens":100,"total_tokens":130}}`, Tokens{Input: 100, Output: 30}, true},
		{"embeddings", Embeddings, `{"usage":{"prompt_tokens":8,"total_tokens":8}}`, Tokens{Input: 8}, true},
		{"missing output", ChatCompletions, `{"usage":{"prompt_tokens":100}}`, Tokens{}, false},
		{"negative", ChatCompletions, `{"usage":{"prompt_tokens":-1,"completion_tokens":5}}`, Tokens{}, false},
		{"over 100M", ChatCompletions, `{"usage":{"prompt_tokens":100000001,"completion_tokens":5}}`, Tokens{}, false},
		{"exactly 100M", ChatCompletions, `{"usage":{"prompt_tokens":100000000,"completion_tokens":5}}`, Tokens{Input: 100000000, Output: 5}, true},
		{"float", ChatCompletions, `{"usage":{"prompt_tokens":10.5,"completion_tokens":5}}`, Tokens{}, false},
		{"string", ChatCompletions, `{"usage":{"prompt_tokens":"10","completion_tokens":5}}`, Tokens{}, false},
		{"absurd detail reads 0", ChatCompletions, `{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":-4},"completion_tokens_details":{"reasoning_tokens":1e9}}}`,
			Tokens{Input: 10, Output: 5}, true},
		{"null usage", ChatCompletions, `{"usage":null}`, Tokens{}, false},
		{"details not objects are ignored", ChatCompletions, `{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":null,"completion_tokens_details":[{"reasoning_tokens":3}]}}`,
			Tokens{Input: 10, Output: 5}, true},
		{"detail names stay in their object", Responses, `{"usage":{"input_tokens":10,"output_tokens":5,"input_tokens_details":{"reasoning_tokens":3,"audio_tokens":2},"output_tokens_details":{"cached_tokens":4,"audio_tokens":1}}}`,
			Tokens{Input: 10, AudioInput: 2, Output: 5, AudioOutput: 1}, true},
	}
	for _, tt := range tests {
		m := NewResponseMeter(requestFor(t, tt.ep, false), nil, Tokens{})
		m.Body([]byte(tt.body))
		res := m.Result()
		if got := res.Source == SourceUpstream; got != tt.ok {
			t.Errorf("%s: upstream usage accepted = %v, want %v", tt.name, got, tt.ok)
		}
		if tt.ok && res.Tokens != tt.want {
			t.Errorf("%s: Tokens = %+v, want %+v", tt.name, res.Tokens, tt.want)
		}
	}
}

// The last usage object of a stream wins (some servers report cumulative usage).
func TestLastUsageWins(t *testing.T) {
	m := NewResponseMeter(requestFor(t, ChatCompletions, true), nil, input)
	m.Event([]byte(`{"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":10,"completion_tokens":1}}`))
	m.Event([]byte(`{"choices":[{"index":0,"delta":{"content":"b"}}],"usage":{"prompt_tokens":10,"completion_tokens":2}}`))
	if got := m.Result().Tokens; got != (Tokens{Input: 10, Output: 2}) {
		t.Errorf("Tokens = %+v, want the last usage", got)
	}
}

func TestBodyInvalid(t *testing.T) {
	for _, body := range []string{``, `{"choices":[`, `[1,2]`, `null`, `{"usage":{"prompt_tokens":1,"completion_tokens":1}`} {
		m := NewResponseMeter(requestFor(t, ChatCompletions, false), wordTokenizer, input)
		m.Body([]byte(body))
		if res := m.Result(); res.Done || res.Source != SourceLocal || res.Tokens != input {
			t.Errorf("Body(%q): Result = %+v, want not done, local input only", body, res)
		}
	}
}

func TestErrorStatus(t *testing.T) {
	m := NewResponseMeter(requestFor(t, ChatCompletions, false), wordTokenizer, input)
	m.Event([]byte(`{"error":{"message":"overloaded","type":"server_error"}}`))
	if got := m.Result().Status; got != "error" {
		t.Errorf("Status = %q, want error", got)
	}
	m = NewResponseMeter(requestFor(t, Responses, false), wordTokenizer, input)
	m.Event([]byte(`{"type":"error","code":"server_error","message":"x"}`))
	if got := m.Result(); got.Status != "error" || got.Done {
		t.Errorf("responses error event: %+v", got)
	}
}

// Long output is counted in pieces as it arrives, with the same total as counting it whole.
func TestLongOutputFlushesExactly(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	m := NewResponseMeter(requestFor(t, ChatCompletions, false), tok, input)
	var text strings.Builder
	for i := range 20_000 {
		piece := []string{"Hello", " world", ", how", " are", " you", " today?\n", " 42"}[i%7]
		text.WriteString(piece)
		m.Event([]byte(`{"choices":[{"index":0,"delta":{"content":"` + strings.ReplaceAll(piece, "\n", `\n`) + `"}}]}`))
	}
	if len(m.texts[0].buf) >= flushAt {
		t.Fatalf("buffer grew to %d bytes", len(m.texts[0].buf))
	}
	if got, want := m.Result().Local.Output, int64(tok.Count(text.String())); got != want {
		t.Errorf("local output %d, want %d", got, want)
	}
}

func TestResultCached(t *testing.T) {
	calls := 0
	tok := fakeTokenizer{count: func(s string) int { calls++; return len(s) }}
	m := NewResponseMeter(requestFor(t, ChatCompletions, false), tok, input)
	m.Event([]byte(`{"choices":[{"index":0,"delta":{"content":"abc"}}]}`))
	a, b := m.Result(), m.Result()
	if a != b || calls != 1 || a.Local.Output != 3 {
		t.Errorf("two Results: %+v %+v after %d counts", a, b, calls)
	}
	m.Event([]byte(`{"choices":[{"index":0,"delta":{"content":"de"}}]}`))
	if got := m.Result().Local.Output; got != 5 {
		t.Errorf("after more output: %d, want 5", got)
	}
}

func TestDriftExceeds(t *testing.T) {
	tests := []struct {
		up, local Tokens
		tol       float64
		want      bool
	}{
		{Tokens{Input: 100, Output: 100}, Tokens{Input: 100, Output: 100}, 0, false},
		{Tokens{Input: 100, Output: 100}, Tokens{Input: 110, Output: 100}, 0.1, false},
		{Tokens{Input: 100, Output: 100}, Tokens{Input: 130, Output: 100}, 0.1, true},
		{Tokens{Input: 100, Output: 100}, Tokens{Input: 70, Output: 100}, 0.1, true},
		{Tokens{Input: 100, CachedInput: 90}, Tokens{Input: 100}, 0, false}, // classes do not matter
		{Tokens{}, Tokens{}, 0.1, false},
		{Tokens{}, Tokens{Input: 1}, 0.5, true},
	}
	for _, tt := range tests {
		if got := DriftExceeds(tt.up, tt.local, tt.tol); got != tt.want {
			t.Errorf("DriftExceeds(%+v, %+v, %v) = %v, want %v", tt.up, tt.local, tt.tol, got, tt.want)
		}
	}
}

// Completions put "text" before "index": each choice's text still goes to its choice.
func TestCompletionsChoicesKeptApart(t *testing.T) {
	var got []string
	tok := fakeTokenizer{count: func(s string) int { got = append(got, s); return 1 }}
	m := NewResponseMeter(requestFor(t, Completions, false), tok, input)
	m.Event([]byte(`{"choices":[{"text":"Hel","index":0},{"text":"Wor","index":1}]}`))
	m.Event([]byte(`{"choices":[{"text":"lo","index":0},{"text":"ld","index":1}]}`))
	m.Result()
	if strings.Join(got, "|") != "Hello|World" {
		t.Errorf("counted %q, want the two choices apart", got)
	}
}
