package metering

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// checkInputTokenBound fails t unless r's InputTokenBound is at least its exact
// count in both encodings the proxy admits on the bound (FuzzParseRequest calls it
// on every request it accepts, so its corpus covers the bound too).
func checkInputTokenBound(t interface {
	Helper()
	Fatalf(format string, args ...any)
}, r *Request) {
	t.Helper()
	bound := r.InputTokenBound()
	for _, enc := range []string{O200kBase, CL100kBase} {
		tok, err := TokenizerFor(enc)
		if err != nil {
			t.Fatalf("TokenizerFor(%q): %v", enc, err)
		}
		if exact := r.InputTokens(tok); bound.Input < exact.Input {
			t.Fatalf("%s: InputTokenBound %d < InputTokens %d for %s request %.200q", enc, bound.Input, exact.Input, r.Endpoint, r.body)
		}
	}
}

// boundPieces are text pieces that stress the byte bound: multi-byte runes that
// are one token, runs that merge, special-token strings (plain text to the API),
// invalid UTF-8 and JSON escapes that decode to more bytes than they look.
var boundPieces = []string{" the", "Quick", " fox's", "12345", " élan", "中文字符", "😀", "\n", "\t", "  ", "-->", "'ll",
	`{"a":1}`, "\xff", "<|endoftext|>", "<|im_start|>", "a", " ", "7", "\u0301", "\U0010FFFF", "\ud7ff"}

// bodyText returns s as a JSON string literal, invalid UTF-8 included (escaped
// as U+FFFD, as an encoder would).
func bodyText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// The bound holds over random chat, Responses and completions requests built from
// adversarial pieces, with names, images, tools and enums.
func TestInputTokenBoundAtLeastExactRandom(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		text := func(label string) string {
			n := rapid.IntRange(0, 60).Draw(rt, label+" pieces")
			var sb strings.Builder
			for range n {
				sb.WriteString(boundPieces[rapid.IntRange(0, len(boundPieces)-1).Draw(rt, label+" piece")])
			}
			if rapid.Bool().Draw(rt, label+" long run") {
				sb.WriteString(strings.Repeat(boundPieces[rapid.IntRange(0, len(boundPieces)-1).Draw(rt, label+" run piece")], rapid.IntRange(1, 3000).Draw(rt, label+" run")))
			}
			return bodyText(sb.String())
		}
		model := rapid.SampledFrom([]string{"gpt-4o", "gpt-4"}).Draw(rt, "model")
		var body string
		switch rapid.IntRange(0, 2).Draw(rt, "endpoint") {
		case 0:
			var msgs []string
			for i := range rapid.IntRange(1, 4).Draw(rt, "messages") {
				m := `{"role":` + text("role") + `,"content":` + text("content")
				if rapid.Bool().Draw(rt, "name") {
					m += `,"name":` + text("name")
				}
				m += "}"
				if i == 0 && rapid.Bool().Draw(rt, "parts") {
					m = `{"role":"user","content":[{"type":"text","text":` + text("part") + `},{"type":"image_url","image_url":{"url":"https://x/y.png","detail":"low"}}]}`
				}
				msgs = append(msgs, m)
			}
			body = `{"model":"` + model + `","messages":[` + strings.Join(msgs, ",") + `]`
			if rapid.Bool().Draw(rt, "tools") {
				body += `,"tools":[{"type":"function","function":{"name":` + text("fn") + `,"description":` + text("desc") +
					`,"parameters":{"type":"object","properties":{"a":{"type":"string","description":` + text("pdesc") + `,"enum":[` + text("e1") + `,` + text("e2") + `]}}}}}]`
			}
			r, err := ParseRequest(ChatCompletions, []byte(body+"}"))
			if err != nil {
				rt.Fatalf("ParseRequest: %v", err)
			}
			checkInputTokenBound(rt, r)
		case 1:
			body = `{"model":"` + model + `","instructions":` + text("instructions") + `,"input":[{"role":"user","content":` + text("input") +
				`},{"type":"function_call","call_id":"c","name":"f","arguments":` + text("args") + `}]}`
			r, err := ParseRequest(Responses, []byte(body))
			if err != nil {
				rt.Fatalf("ParseRequest: %v", err)
			}
			checkInputTokenBound(rt, r)
		default:
			body = `{"model":"` + model + `","prompt":[` + text("p1") + `,` + text("p2") + `]}`
			r, err := ParseRequest(Completions, []byte(body))
			if err != nil {
				rt.Fatalf("ParseRequest: %v", err)
			}
			checkInputTokenBound(rt, r)
		}
	})
}

// The bound holds on the package's texts: every fixture and the bpe corpus (prose,
// code, multilingual text, emoji, invalid UTF-8) as one message.
func TestInputTokenBoundAtLeastExactOnCorpus(t *testing.T) {
	checked := 0
	for _, dir := range []string{"testdata", filepath.Join("bpe", "testdata", "corpus")} {
		files, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if f.IsDir() {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseRequest(ChatCompletions, []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":`+bodyText(string(data))+`}]}`))
			if err != nil {
				t.Fatalf("%s: %v", f.Name(), err)
			}
			checkInputTokenBound(t, r)
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d texts checked", checked)
	}
}

// Where the bound is exact, and how far above it is on prose: the equality cases
// its doc comment names.
func TestInputTokenBoundEqualityCases(t *testing.T) {
	cases := []struct {
		name, endpoint, body string
		enc                  string
		equal                bool
	}{
		{"one-byte texts", "chat.completions", `{"model":"gpt-4o","messages":[{"role":"a","content":"b","name":"c"}]}`, O200kBase, true},
		{"empty content", "chat.completions", `{"model":"gpt-4o","messages":[{"role":"u","content":""}]}`, O200kBase, true},
		{"token ids only", "completions", `{"model":"davinci-002","prompt":[[1,2,3],[4]]}`, CL100kBase, true},
		{"low-detail image", "chat.completions", `{"model":"gpt-4o","messages":[{"role":"u","content":[{"type":"image_url","image_url":{"url":"https://x/y.png","detail":"low"}}]}]}`, O200kBase, true},
		{"function on cl100k", "chat.completions", `{"model":"gpt-4","messages":[{"role":"u","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}`, CL100kBase, true},
		{"function on o200k", "chat.completions", `{"model":"gpt-4o","messages":[{"role":"u","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}`, O200kBase, false},
		{"prose", "chat.completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"The quick brown fox jumps over the lazy dog."}]}`, O200kBase, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRequest(Endpoint(c.endpoint), []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			bound, exact := r.InputTokenBound(), r.InputTokens(tokenizer(t, c.enc))
			if bound.Input < exact.Input {
				t.Fatalf("bound %d < exact %d", bound.Input, exact.Input)
			}
			if (bound == exact) != c.equal {
				t.Fatalf("bound %d, exact %d: want equal=%v", bound.Input, exact.Input, c.equal)
			}
		})
	}
}
