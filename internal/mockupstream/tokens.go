package mockupstream

import (
	"fmt"
	"strings"
	"sync"

	"github.com/creditgate/creditgate/metering/bpe"
)

// encoding is one tiktoken encoding, loaded once on first use. It counts with
// metering/bpe, which gives exactly tiktoken's counts in time linear in the text: the
// mock is the quickstart's and the demo's upstream, and pkoukk/tiktoken-go's merge is
// quadratic in the length of a piece (a 4 MiB prompt without spaces took minutes of
// CPU, which went on after the client left). The mock's tests hold its counts to
// pkoukk/tiktoken-go's (ReferenceTokenizer), so its usage is still checked against an
// independent tokenizer.
type encoding struct {
	name string

	once sync.Once
	enc  *bpe.Encoding
	err  error
}

var (
	o200k  = &encoding{name: bpe.O200kBase}
	cl100k = &encoding{name: bpe.Cl100kBase}
)

// Preload loads both encodings now rather than on the first request (~0.3 s), so a
// command can fail at start-up and a benchmark can keep the load out of its timing.
func Preload() error {
	for _, e := range []*encoding{o200k, cl100k} {
		if _, err := e.load(); err != nil {
			return err
		}
	}
	return nil
}

// encodingFor maps a model to its tokenizer as OpenAI documents it: cl100k_base for
// gpt-4, gpt-3.5 and the embedding models, o200k_base for gpt-4o and later (gpt-4.1,
// o-series, gpt-5) and for unknown models.
func encodingFor(model string) *encoding {
	m := strings.TrimPrefix(strings.ToLower(model), "ft:")
	for _, p := range []string{"gpt-4o", "gpt-4.1", "gpt-4.5", "chatgpt-4o"} {
		if strings.HasPrefix(m, p) {
			return o200k
		}
	}
	for _, p := range []string{"gpt-4", "gpt-3.5", "text-embedding-", "davinci-002", "babbage-002"} {
		if strings.HasPrefix(m, p) {
			return cl100k
		}
	}
	return o200k
}

func (e *encoding) load() (*bpe.Encoding, error) {
	e.once.Do(func() {
		e.enc, e.err = bpe.Get(e.name)
		if e.err != nil {
			e.err = fmt.Errorf("mockupstream: load tiktoken encoding %s: %w", e.name, e.err)
		}
	})
	return e.enc, e.err
}

// count is the number of tokens of text, special-token look-alikes counted as text.
// It takes time linear in len(text).
func (e *encoding) count(text string) (int, error) {
	if text == "" {
		return 0, nil
	}
	enc, err := e.load()
	if err != nil {
		return 0, err
	}
	return enc.Count(text), nil
}

// chatPromptTokens counts messages with OpenAI's documented formula for chat models:
// 3 tokens per message, plus its role and content, plus its name and 1 more when set,
// plus 3 priming the reply. Content counts its string or, for an array of parts, each
// text part; images, audio and tool calls count nothing. It also returns a hash of the
// counted text, which seeds the generated reply.
func chatPromptTokens(e *encoding, msgs []message) (tokens int64, seed uint64, err error) {
	seed = fnvOffset
	tokens = 3
	add := func(s string) error {
		n, err := e.count(s)
		tokens += int64(n)
		seed = fnv(seed, s)
		return err
	}
	for _, m := range msgs {
		tokens += 3
		if err := add(m.Role); err != nil {
			return 0, 0, err
		}
		for _, text := range m.Content {
			if err := add(text); err != nil {
				return 0, 0, err
			}
		}
		if m.Name != "" {
			tokens++
			if err := add(m.Name); err != nil {
				return 0, 0, err
			}
		}
	}
	return tokens, seed, nil
}

// inputTokens counts one prompt or embedding input: a text's tokens or a token array's
// length.
func inputTokens(e *encoding, in input) (int64, error) {
	if in.tokens != nil {
		return int64(len(in.tokens)), nil
	}
	n, err := e.count(in.text)
	return int64(n), err
}

const fnvOffset uint64 = 14695981039346656037

// fnv is FNV-1a, inline so that hashing a prompt does not allocate.
func fnv(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// words make up the generated text. Each is a single token, with or without a leading
// space, in both o200k_base and cl100k_base (TestWordsAreSingleTokens), and words are
// joined by one space, so a text of n words is exactly n tokens and one stream event
// carries one token, as OpenAI's do.
var words = [...]string{
	"the", "mock", "model", "big", "hello", "world", "this", "is", "some", "text",
	"from", "an", "server", "that", "counts", "every", "token", "it", "back", "to",
	"you", "and", "your", "proxy", "so", "we", "can", "test", "with", "real",
	"numbers", "each", "word", "here", "should", "be", "one", "in", "both", "while",
	"still", "reading", "like", "plain", "english", "about", "credit", "cost", "price", "time",
	"day", "good", "new", "first", "last", "long", "great", "little", "own", "other",
	"quick", "brown", "fox", "lazy",
}

// spacedWords are words with their leading space, precomputed for stream deltas.
var spacedWords = func() (s [len(words)]string) {
	for i, w := range words {
		s[i] = " " + w
	}
	return s
}()

// text is a generated reply: n words cycling through the list from words[start].
type text struct{ start, n int }

func newText(seed uint64, choice, n int) text {
	// Choices start apart so that n > 1 gives visibly different replies.
	return text{start: int((seed + uint64(choice)*7) % uint64(len(words))), n: n}
}

// delta is the i-th word as a stream carries it: with its separating space after the
// first, so the deltas concatenate to String().
func (t text) delta(i int) string {
	k := (t.start + i) % len(words)
	if i == 0 {
		return words[k]
	}
	return spacedWords[k]
}

func (t text) String() string {
	var b strings.Builder
	for i := range t.n {
		b.WriteString(t.delta(i))
	}
	return b.String()
}

// budget splits a request's output limit between reasoning and text: reasoning tokens
// come first and count against the limit as they do at OpenAI; truncated tells whether
// the limit cut the reply (finish_reason "length").
func budget(outputTokens int, limit *int, reasoning int64) (textTokens int, reasoningTokens int64, truncated bool) {
	if limit == nil {
		return outputTokens, reasoning, false
	}
	l := int64(*limit)
	reasoningTokens = min(reasoning, l)
	textTokens = int(min(int64(outputTokens), l-reasoningTokens))
	return textTokens, reasoningTokens, reasoning+int64(outputTokens) > l
}
