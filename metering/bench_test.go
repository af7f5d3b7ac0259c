package metering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chatRequest1k is a realistic chat request of about 1,000 input tokens (o200k_base):
// a system prompt and a few turns of conversation.
func chatRequest1k() []byte {
	para := "Creditgate meters every request against a prepaid balance. The proxy counts the " +
		"prompt locally, reserves the worst case, forwards the call and settles what the upstream " +
		"reports, so that an account can never overspend its credit by more than the grace amount. "
	msgs := []map[string]string{{"role": "system", "content": "You are a concise assistant for a billing team. " + para}}
	for i := range 9 {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		msgs = append(msgs, map[string]string{"role": role, "content": fmt.Sprintf("Turn %d: %s%s", i, para, para)})
	}
	body, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini", "stream": true, "max_tokens": 512, "messages": msgs})
	return body
}

func TestChatRequest1kSize(t *testing.T) {
	r := mustParse(t, ChatCompletions, string(chatRequest1k()))
	n := r.InputTokens(tokenizer(t, O200kBase)).Input
	if n < 900 || n > 1100 {
		t.Fatalf("benchmark request has %d tokens, want about 1,000", n)
	}
}

// BenchmarkParseRequestInputTokens: the request path's metering work per request.
func BenchmarkParseRequestInputTokens(b *testing.B) {
	body := chatRequest1k()
	tok := tokenizer(b, O200kBase)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := ParseRequest(ChatCompletions, body)
		if err != nil {
			b.Fatal(err)
		}
		r.InputTokens(tok)
	}
}

// BenchmarkParseRequestInputTokensUncached: the same with every text counted anew
// (a request whose texts the count cache has not seen): with metering/bpe, as
// TokenizerFor counts, and with pkoukk/tiktoken-go, as it used to.
func BenchmarkParseRequestInputTokensUncached(b *testing.B) {
	body := chatRequest1k()
	for _, c := range []struct {
		name string
		tok  Tokenizer
	}{{"bpe", uncached(b, O200kBase)}, {"pkoukk", segmenter(b, O200kBase)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := ParseRequest(ChatCompletions, body)
				if err != nil {
					b.Fatal(err)
				}
				r.InputTokens(c.tok)
			}
		})
	}
}

// BenchmarkTokenizer: counting one ~1,000-token prompt's worth of prose and of code,
// uncached, with metering/bpe (what TokenizerFor uses) and with pkoukk/tiktoken-go;
// and a cache hit.
func BenchmarkTokenizer(b *testing.B) {
	texts := map[string]string{
		"prose": string(fixtureOr(b, filepath.Join("bpe", "testdata", "corpus", "prose_en.txt"))),
		"code":  string(fixtureOr(b, filepath.Join("bpe", "testdata", "corpus", "code.txt"))),
	}
	for _, name := range []string{"prose", "code"} {
		text := strings.Repeat(texts[name], 4500/len(texts[name])+1)[:4500] // about 1,000 tokens
		for _, enc := range []string{O200kBase, CL100kBase} {
			for _, c := range []struct {
				impl string
				tok  Tokenizer
			}{{"bpe", uncached(b, enc)}, {"pkoukk", segmenter(b, enc)}, {"cached", tokenizer(b, enc)}} {
				b.Run(name+"/"+enc+"/"+c.impl, func(b *testing.B) {
					b.SetBytes(int64(len(text)))
					b.ReportAllocs()
					for b.Loop() {
						c.tok.Count(text)
					}
				})
			}
		}
	}
}

// fixtureOr reads a file relative to the package directory or fails the benchmark.
func fixtureOr(b *testing.B, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkParseRequest: parsing and validation alone.
func BenchmarkParseRequest(b *testing.B) {
	body := chatRequest1k()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(ChatCompletions, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRewrite(b *testing.B) {
	body := chatRequest1k()
	r, err := ParseRequest(ChatCompletions, body)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Rewrite(body, 100); err != nil {
			b.Fatal(err)
		}
	}
}

// streamBody is a chat stream of n content chunks plus the usage chunk and [DONE].
func streamBody(n int) []byte {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `data: {"id":"chatcmpl-B","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_06737a9306","choices":[{"index":0,"delta":{"content":" word%d"},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n", i)
	}
	sb.WriteString(`data: {"id":"chatcmpl-B","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}}}` + "\n\n")
	sb.WriteString("data: [DONE]\n\n")
	return []byte(sb.String())
}

// BenchmarkStreamFilter: a 500-chunk stream read event by event, as the proxy does,
// with the usage chunk hidden; the local output count (Result) included.
func BenchmarkStreamFilter(b *testing.B) {
	body := streamBody(500)
	req := requestFor(b, ChatCompletions, false)
	tok := tokenizer(b, O200kBase)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		m := NewResponseMeter(req, tok, Tokens{Input: 1000})
		f := NewStreamFilter(io.NopCloser(bytes.NewReader(body)), m)
		for {
			if _, err := f.Read(buf); err != nil {
				break
			}
		}
		if res := m.Result(); !res.Done {
			b.Fatal("stream not done")
		}
	}
}

// BenchmarkStreamFilterLimited: BenchmarkStreamFilter under the limit the proxy
// sets, for an honest stream: "far" is the model's largest output (the cap is never
// near), "at-cap" a cap of exactly the stream's tokens (past the byte bound the
// output is counted exactly, event by event, and never cut).
func BenchmarkStreamFilterLimited(b *testing.B) {
	body := streamBody(500)
	req := requestFor(b, ChatCompletions, false)
	tok := tokenizer(b, O200kBase)
	buf := make([]byte, 32<<10)
	run := func(l *Limit) Result {
		m := NewResponseMeter(req, tok, Tokens{Input: 1000})
		if l != nil {
			m.SetLimit(*l)
		}
		f := NewStreamFilter(io.NopCloser(bytes.NewReader(body)), m)
		for {
			if _, err := f.Read(buf); err != nil {
				break
			}
		}
		return m.Result()
	}
	total := run(nil).Local.Output
	price := Price{Input: 150_000, CachedInput: 75_000, AudioInput: 150_000, Output: 600_000, Reasoning: 600_000, AudioOutput: 600_000}
	for _, c := range []struct {
		name string
		cap  int64
	}{{"far", 16384}, {"at-cap", total}} {
		l := Limit{PerChoice: c.cap, Choices: 1, Price: price, Input: Tokens{Input: 1000}, Hold: price.WorstCase(Tokens{Input: 1000}, c.cap)}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if res := run(&l); !res.Done || res.Cut || res.Local.Output != total {
					b.Fatalf("Result %+v, want the whole stream (%d tokens)", res, total)
				}
			}
		})
	}
}

// BenchmarkStreamFilterNoCount: the filter and chunk metering without the final count.
func BenchmarkStreamFilterNoCount(b *testing.B) {
	body := streamBody(500)
	req := requestFor(b, ChatCompletions, false)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		m := NewResponseMeter(req, nil, Tokens{Input: 1000})
		f := NewStreamFilter(io.NopCloser(bytes.NewReader(body)), m)
		for {
			if _, err := f.Read(buf); err != nil {
				break
			}
		}
	}
}

// BenchmarkCountAdversarial: 1 MiB inputs that made pkoukk's regexp and merge
// quadratic, counted by TokenizerFor's counter (metering/bpe; uncached).
func BenchmarkCountAdversarial(b *testing.B) {
	inputs := map[string]string{
		"letters":  strings.Repeat("a", 1<<20),
		"emoji":    strings.Repeat("😀", 1<<18),
		"spaces":   strings.Repeat(" ", 1<<20),
		"newlines": strings.Repeat("\n", 1<<20),
		"digits":   strings.Repeat("7", 1<<20),
		"cjk":      strings.Repeat("中文字符", 1<<16),
		"punct":    strings.Repeat("-", 1<<20),
		"mixed":    strings.Repeat("ab!", 1<<18),
		"prose":    strings.Repeat("The quick brown fox jumps over the lazy dog. ", 1<<20/45),
	}
	for _, enc := range []string{O200kBase, CL100kBase} {
		tok := uncached(b, enc) // every iteration counts
		for _, name := range []string{"letters", "emoji", "spaces", "newlines", "digits", "cjk", "punct", "mixed", "prose"} {
			text := inputs[name]
			b.Run(enc+"/"+name, func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					tok.Count(text)
				}
			})
		}
	}
}

// BenchmarkPricing: what the proxy does with prices per request: resolve the model
// (exact name, alias, dated snapshot), price the estimate and the usage, and find the
// output cap a hold pays for.
func BenchmarkPricing(b *testing.B) {
	models := map[string]Price{
		"gpt-4o-mini": {Input: 150_000, CachedInput: 75_000, AudioInput: 150_000, Output: 600_000, Reasoning: 600_000, AudioOutput: 600_000},
		"gpt-4o":      {Input: 2_500_000, CachedInput: 1_250_000, AudioInput: 2_500_000, Output: 10_000_000, Reasoning: 10_000_000, AudioOutput: 10_000_000},
	}
	p, err := NewPricing(models, map[string]string{"mini": "gpt-4o-mini"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, model := range []string{"gpt-4o-mini", "mini", "gpt-4o-2024-08-06"} {
		b.Run("Resolve/"+model, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, ok := p.Resolve(model); !ok {
					b.Fatal("unpriced")
				}
			}
		})
	}
	price := models["gpt-4o-mini"]
	usage := Tokens{Input: 1000, CachedInput: 200, Output: 64, Reasoning: 10}
	b.Run("Cost", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			price.Cost(usage)
		}
	})
	b.Run("MaxOutputFor", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			price.MaxOutputFor(Tokens{Input: 1000}, 1, 5_000)
		}
	})
}
