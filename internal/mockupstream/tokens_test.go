package mockupstream

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// The generated text is exactly one token per word only if every word is one token in
// both encodings, alone (first word) and after a space (the others).
func TestWordsAreSingleTokens(t *testing.T) {
	for _, e := range []*encoding{o200k, cl100k} {
		tk, err := e.load()
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range words {
			for _, s := range []string{w, spacedWords[i]} {
				if n := tk.Count(s); n != 1 {
					t.Errorf("%s: %q is %d tokens, want 1", e.name, s, n)
				}
			}
		}
	}
}

// The mock counts with metering/bpe; it must count as tiktoken-go's own encoder does.
func TestEncodingsMatchTiktoken(t *testing.T) {
	texts := []string{
		"Hello, world!", "You are a helpful assistant.", "  leading and trailing  ", "line\nbreaks\r\n\n\nhere",
		"numbers 1234567 3.14159", "I'm sure they'll say it's fine, we've done it", "ÀÉÎÕÜ ñ çà", "日本語のテキスト",
		"emoji 🎉🚀 mixed", "<|endoftext|> looks special", "tabs\tand\u00a0spaces", "CamelCaseWordsAndALLCAPS", "a/b/c\n/d",
	}
	for _, e := range []*encoding{o200k, cl100k} {
		mine, err := e.load()
		if err != nil {
			t.Fatal(err)
		}
		ref, err := ReferenceTokenizer(e.name)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range texts {
			got, want := mine.Encode(text), ref.EncodeOrdinary(text)
			if !slices.Equal(got, want) {
				t.Errorf("%s %q: %v, tiktoken-go %v", e.name, text, got, want)
			}
		}
	}
}

func TestEncodingFor(t *testing.T) {
	for _, tc := range []struct {
		model string
		want  *encoding
	}{
		{"gpt-4o-mini", o200k},
		{"gpt-4o-2024-08-06", o200k},
		{"chatgpt-4o-latest", o200k},
		{"gpt-4.1-nano", o200k},
		{"o3-mini", o200k},
		{"gpt-5", o200k},
		{"ft:gpt-4o-mini:acme::abc", o200k},
		{"gpt-4", cl100k},
		{"gpt-4-turbo", cl100k},
		{"gpt-3.5-turbo-instruct", cl100k},
		{"text-embedding-3-small", cl100k},
		{"some-future-model", o200k},
	} {
		if got := encodingFor(tc.model); got != tc.want {
			t.Errorf("encodingFor(%q) = %s, want %s", tc.model, got.name, tc.want.name)
		}
	}
}

func TestBudget(t *testing.T) {
	ptr := func(n int) *int { return &n }
	for _, tc := range []struct {
		name          string
		output        int
		limit         *int
		reasoning     int64
		wantText      int
		wantReasoning int64
		wantTruncated bool
	}{
		{"no limit", 16, nil, 0, 16, 0, false},
		{"no limit with reasoning", 16, nil, 5, 16, 5, false},
		{"limit above", 16, ptr(100), 0, 16, 0, false},
		{"limit exactly", 16, ptr(16), 0, 16, 0, false},
		{"limit below", 16, ptr(5), 0, 5, 0, true},
		{"reasoning eats the limit", 16, ptr(20), 10, 10, 10, true},
		{"reasoning beyond the limit", 16, ptr(4), 10, 0, 4, true},
		{"reasoning and text fit", 16, ptr(26), 10, 16, 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, reasoning, truncated := budget(tc.output, tc.limit, tc.reasoning)
			if text != tc.wantText || reasoning != tc.wantReasoning || truncated != tc.wantTruncated {
				t.Errorf("budget = (%d, %d, %v), want (%d, %d, %v)", text, reasoning, truncated, tc.wantText, tc.wantReasoning, tc.wantTruncated)
			}
		})
	}
}

// What the proxy's overdraft bound relies on: output never exceeds the request's limit.
func TestBudgetNeverExceedsLimit(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		output := rapid.IntRange(0, 1000).Draw(t, "output")
		limit := rapid.IntRange(1, 1000).Draw(t, "limit")
		reasoning := rapid.Int64Range(0, 1000).Draw(t, "reasoning")
		text, r, truncated := budget(output, &limit, reasoning)
		if int64(text)+r > int64(limit) {
			t.Fatalf("text %d + reasoning %d > limit %d", text, r, limit)
		}
		if text < 0 || r < 0 || r > reasoning || text > output {
			t.Fatalf("budget(%d, %d, %d) = (%d, %d)", output, limit, reasoning, text, r)
		}
		if truncated != (int64(text)+r < int64(output)+reasoning) {
			t.Fatalf("truncated = %v with text %d + reasoning %d of %d + %d", truncated, text, r, output, reasoning)
		}
	})
}

func TestTextDeltasConcatenate(t *testing.T) {
	for _, tc := range []struct {
		seed   uint64
		choice int
		n      int
	}{{0, 0, 0}, {1, 0, 1}, {42, 1, 16}, {^uint64(0), 3, 200}} {
		txt := newText(tc.seed, tc.choice, tc.n)
		var joined string
		for i := range txt.n {
			joined += txt.delta(i)
		}
		if joined != txt.String() {
			t.Errorf("deltas %q != text %q", joined, txt.String())
		}
	}
}
