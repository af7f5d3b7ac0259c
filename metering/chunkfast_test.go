package metering

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// meterState is what a ResponseMeter has learned, for comparing two of them.
type meterState struct {
	Forward  bool
	Usage    Tokens
	HasUsage bool
	Done     bool
	Status   string
	Texts    []outputText
	Counted  int64
	Result   Result
}

func stateOf(m *ResponseMeter, forward bool) meterState {
	texts := make([]outputText, len(m.texts))
	counted := int64(0)
	for i, t := range m.texts {
		texts[i] = outputText{a: t.a, b: t.b, buf: bytes.Clone(t.buf), counted: t.counted}
		counted += t.counted
	}
	return meterState{Forward: forward, Usage: m.usage, HasUsage: m.hasUsage, Done: m.done, Status: m.status,
		Texts: texts, Counted: counted, Result: m.Result()}
}

// meterBoth meters the same documents, as stream events or as a plain body, with
// and without fastChunk, and fails when anything differs.
func meterBoth(t fataler, ep Endpoint, includeUsage, stream bool, docs ...[]byte) {
	t.Helper()
	req := &Request{Endpoint: ep, IncludeUsage: includeUsage}
	fast := NewResponseMeter(req, wordTokenizer, Tokens{Input: 3})
	general := NewResponseMeter(req, wordTokenizer, Tokens{Input: 3})
	general.generalOnly = true
	for i, doc := range docs {
		var ff, gf bool
		if stream {
			ff, gf = fast.Event(bytes.Clone(doc)), general.Event(bytes.Clone(doc))
		} else {
			fast.Body(bytes.Clone(doc))
			general.Body(bytes.Clone(doc))
		}
		if got, want := stateOf(fast, ff), stateOf(general, gf); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s stream=%v, after document %d %q:\nfast path    %+v\ngeneral path %+v", ep, stream, i, doc, got, want)
		}
	}
}

// genChunk draws a chat or completions chunk: mostly the usual shapes, with the
// unusual ones fastChunk must leave to the general path (escaped or repeated keys,
// tool calls, non-object values, many choices, deep nesting) and, sometimes, a
// corrupted byte.
func genChunk(t *rapid.T) []byte {
	str := func(label string) string {
		return rapid.SampledFrom([]string{`""`, `"Hello"`, `" world"`, `"caf\u00e9 \"q\""`, `"tab\there"`, `"line\nbreak"`,
			`null`, `1`, `{"x":1}`, `["a"]`, `"stop"`, `"length"`, `"st\u006fp"`, `true`}).Draw(t, label)
	}
	key := func(label string, names ...string) string {
		names = append(names, "other", `cont\u0065nt`, "role")
		return `"` + rapid.SampledFrom(names).Draw(t, label) + `"`
	}
	ws := func() string { return rapid.SampledFrom([]string{"", "", " ", "\n  ", "\t"}).Draw(t, "ws") }
	object := func(n int, member func() string) string {
		var parts []string
		for range n {
			parts = append(parts, ws()+member()+ws())
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	delta := func() string {
		return object(rapid.IntRange(0, 5).Draw(t, "delta members"), func() string {
			k := key("delta key", "content", "refusal", "reasoning", "reasoning_content", "tool_calls", "function_call")
			v := str("delta value")
			switch k {
			case `"tool_calls"`:
				v = `[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]`
			case `"function_call"`:
				v = `{"name":"g","arguments":"x y"}`
			}
			return k + ":" + ws() + v
		})
	}
	choice := func() string {
		if rapid.IntRange(0, 9).Draw(t, "non-object choice") == 0 {
			return str("choice")
		}
		return object(rapid.IntRange(0, 6).Draw(t, "choice members"), func() string {
			k := key("choice key", "index", "finish_reason", "text", "delta", "message", "logprobs")
			v := str("choice value")
			switch k {
			case `"index"`:
				v = rapid.SampledFrom([]string{"0", "1", "2", "-1", "1.5", `"1"`, "99999999999999999999"}).Draw(t, "index")
			case `"delta"`, `"message"`:
				if rapid.IntRange(0, 5).Draw(t, "non-object delta") > 0 {
					v = delta()
				}
			}
			return k + ":" + ws() + v
		})
	}
	doc := object(rapid.IntRange(0, 6).Draw(t, "members"), func() string {
		k := key("key", "id", "choices", "usage", "error", "model", `cho\u0069ces`)
		var v string
		switch k {
		case `"choices"`, `"cho\u0069ces"`:
			n := rapid.IntRange(0, 6).Draw(t, "choices")
			var cs []string
			for range n {
				cs = append(cs, choice())
			}
			v = "[" + strings.Join(cs, ",") + "]"
			if rapid.IntRange(0, 9).Draw(t, "choices not an array") == 0 {
				v = str("choices")
			}
		case `"usage"`:
			v = rapid.SampledFrom([]string{`null`, `{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}`,
				`{"prompt_tokens":5,"total_tokens":9,"prompt_tokens_details":{"cached_tokens":2}}`, `{"input_tokens":1}`, `[]`}).Draw(t, "usage")
		case `"error"`:
			v = rapid.SampledFrom([]string{`{"message":"boom"}`, `null`, `"x"`}).Draw(t, "error")
		default:
			v = str("value")
			if rapid.IntRange(0, 19).Draw(t, "deep") == 0 {
				d := rapid.IntRange(500, 520).Draw(t, "depth")
				v = strings.Repeat("[", d) + strings.Repeat("]", d)
			}
		}
		return k + ":" + ws() + v
	})
	b := []byte(ws() + doc + ws())
	if rapid.IntRange(0, 9).Draw(t, "corrupt") == 0 && len(b) > 0 {
		i := rapid.IntRange(0, len(b)-1).Draw(t, "at")
		b[i] = rapid.SampledFrom([]byte(`{}[],:"\ x1`)).Draw(t, "byte")
	}
	return b
}

// fastChunk has exactly the effects of the general path (jsonscan.Check, then chunk) on
// every document, valid or not, whether it handles it or gives up.
func TestFastChunkMatchesGeneralPath(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ep := rapid.SampledFrom([]Endpoint{ChatCompletions, Completions}).Draw(t, "endpoint")
		stream := rapid.Bool().Draw(t, "stream")
		docs := rapid.SliceOfN(rapid.Custom(genChunk), 1, 4).Draw(t, "docs")
		meterBoth(t, ep, rapid.Bool().Draw(t, "include usage"), stream, docs...)
	})
}

// The recorded answers of the tests: every event and body, both paths alike.
func TestFastChunkMatchesGeneralPathOnFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil || strings.HasPrefix(filepath.Base(name), "responses") {
			continue
		}
		ep := ChatCompletions
		if strings.HasPrefix(filepath.Base(name), "completions") {
			ep = Completions
		}
		switch filepath.Ext(name) {
		case ".json":
			meterBoth(t, ep, false, false, data)
		case ".sse":
			var events [][]byte
			for _, line := range strings.Split(string(data), "\n") {
				if d, ok := strings.CutPrefix(line, "data: "); ok {
					events = append(events, []byte(d))
				}
			}
			meterBoth(t, ep, false, true, events...)
		}
	}
}

// The shapes upstreams stream token by token take the fast path (else it would be
// dead code, and the stream metering as slow as before).
func TestFastChunkTakesUsualChunks(t *testing.T) {
	for _, c := range []struct {
		doc    string
		stream bool
	}{
		{`{"id":"chatcmpl-B","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}],"usage":null}`, true},
		{`{"id":"chatcmpl-B","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}]}`, true},
		{`{"id":"chatcmpl-B","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, true},
		{`{"id":"chatcmpl-B","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500}}`, true},
		{`{"id":"cmpl-1","object":"text_completion","choices":[{"text":" word","index":0,"logprobs":null,"finish_reason":null}]}`, true},
		{`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`, false},
	} {
		m := NewResponseMeter(nil, wordTokenizer, Tokens{})
		if _, ok := m.fastChunk([]byte(c.doc), c.stream); !ok {
			t.Errorf("fastChunk gave up on %s", c.doc)
		}
	}
}

// FuzzFastChunk: on any input, as a stream event and as a plain body, fastChunk and
// the general path agree.
//
//	go test -run '^$' -fuzz '^FuzzFastChunk$' -fuzztime 30s ./metering
func FuzzFastChunk(f *testing.F) {
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}],"usage":null}`), false)
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`), true)
	f.Add([]byte(`{"choices":[{"text":"a","index":1},{"index":0,"message":{"content":"b"},"finish_reason":"length"}]}`), false)
	f.Add([]byte(`{"error":{"message":"x"},"choices":[{"finish_reason":"stop"}]}`), true)
	f.Fuzz(func(t *testing.T, doc []byte, includeUsage bool) {
		for _, ep := range []Endpoint{ChatCompletions, Completions} {
			meterBoth(t, ep, includeUsage, true, doc)
			meterBoth(t, ep, includeUsage, false, doc)
		}
	})
}
