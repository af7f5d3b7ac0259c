package metering

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

// Counts published in OpenAI's cookbook "How to count tokens with tiktoken"
// (github.com/openai/openai-cookbook, examples/How_to_count_tokens_with_tiktoken.ipynb,
// sections 3 and 5: the printed outputs of num_tokens_from_string and
// compare_encodings).
func TestTokenizerCookbookStrings(t *testing.T) {
	tests := []struct {
		text          string
		cl100k, o200k int
	}{
		{"tiktoken is great!", 6, 6}, // section 3 prints 6 for o200k_base; cl100k_base splits it the same way
		{"antidisestablishmentarianism", 6, 6},
		{"2 + 2 = 4", 7, 7},
		{"お誕生日おめでとう", 9, 8},
	}
	cl, o2 := tokenizer(t, CL100kBase), tokenizer(t, O200kBase)
	for _, tt := range tests {
		if got := cl.Count(tt.text); got != tt.cl100k {
			t.Errorf("cl100k_base Count(%q) = %d, want %d", tt.text, got, tt.cl100k)
		}
		if got := o2.Count(tt.text); got != tt.o200k {
			t.Errorf("o200k_base Count(%q) = %d, want %d", tt.text, got, tt.o200k)
		}
	}
}

func TestTokenizerSpecialTokensAreText(t *testing.T) {
	for _, enc := range []string{CL100kBase, O200kBase} {
		tok := tokenizer(t, enc)
		// As ordinary text "<|endoftext|>" is several tokens, never the one special token.
		if got := tok.Count("<|endoftext|>"); got <= 1 {
			t.Errorf("%s: Count(<|endoftext|>) = %d, want the plain-text count (> 1)", enc, got)
		}
	}
}

func TestTokenizerForUnknownEncoding(t *testing.T) {
	_, err := TokenizerFor("gpt2_base")
	if err == nil || !strings.Contains(err.Error(), `"gpt2_base"`) {
		t.Fatalf("TokenizerFor(gpt2_base) error = %v, want one naming the encoding", err)
	}
}

func TestTokenizerForConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	counts := make([]int, 8)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := TokenizerFor(CL100kBase)
			if err != nil {
				t.Error(err)
				return
			}
			counts[i] = tok.Count("The quick brown fox jumps over the lazy dog.")
		}()
	}
	wg.Wait()
	for i, c := range counts {
		if c != 10 {
			t.Errorf("goroutine %d counted %d, want 10", i, c)
		}
	}
}

// rawCount is the unsegmented pkoukk count: tiktoken's own count, the reference.
func rawCount(tok *tiktokenCounter, text string) int {
	return len(tok.enc.EncodeOrdinary(text))
}

// segmenter is an uncached pkoukk adapter, whose Count segments its input (what the
// legacy encodings count with).
func segmenter(t testing.TB, encoding string) *tiktokenCounter {
	t.Helper()
	tok, err := newTiktokenCounter(encoding)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// uncached is TokenizerFor's counter without the count cache.
func uncached(t testing.TB, encoding string) Tokenizer {
	t.Helper()
	return tokenizer(t, encoding).(*countCache).inner
}

// TokenizerFor counts o200k_base and cl100k_base with metering/bpe and the legacy
// encodings with pkoukk.
func TestTokenizerForImplementations(t *testing.T) {
	for enc, want := range map[string]string{O200kBase: "metering.bpeCounter", CL100kBase: "metering.bpeCounter", "p50k_base": "*metering.tiktokenCounter"} {
		if got := fmt.Sprintf("%T", uncached(t, enc)); got != want {
			t.Errorf("TokenizerFor(%s) counts with %s, want %s", enc, got, want)
		}
		if got := tokenizer(t, enc).(encoder).Encoding(); got != enc {
			t.Errorf("TokenizerFor(%s).Encoding() = %q", enc, got)
		}
	}
}

// The bpe counter gives exactly pkoukk/tiktoken-go's counts (its own package tests
// this at length; this checks the wiring): on metering's request and response
// fixtures, on the bpe corpus (prose, code, multilingual text, emoji, invalid UTF-8),
// on random mixtures of those, and on long runs where pkoukk's segmented counter
// was off by a token per cut.
func TestTokenizerMatchesTiktoken(t *testing.T) {
	var texts []string
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
			texts = append(texts, string(data))
		}
	}
	if len(texts) < 10 {
		t.Fatalf("only %d texts to compare", len(texts))
	}
	texts = append(texts, strings.Repeat("a", 5000), strings.Repeat("😀", 1500), strings.Repeat("ab!", 2000),
		strings.Repeat(" ", 3000)+"x", strings.Repeat("7", 9000), "<|endoftext|> is text", "")
	for _, enc := range []string{O200kBase, CL100kBase} {
		tok, ref := uncached(t, enc), segmenter(t, enc)
		for _, text := range texts {
			if got, want := tok.Count(text), rawCount(ref, text); got != want {
				t.Errorf("%s: Count = %d, tiktoken-go %d, on %d bytes starting %.40q", enc, got, want, len(text), text)
			}
		}
		pieces := []string{" the", "Quick", " fox's", "12345", " élan", "中文字符", "😀", "\n", "\t", "  ", "-->", "'ll", "{\"a\":1}", "\xff"}
		rapid.Check(t, func(rt *rapid.T) {
			n := rapid.IntRange(0, 200).Draw(rt, "n")
			var sb strings.Builder
			for range n {
				sb.WriteString(pieces[rapid.IntRange(0, len(pieces)-1).Draw(rt, "piece")])
			}
			text := sb.String()
			if got, want := tok.Count(text), rawCount(ref, text); got != want {
				rt.Fatalf("%s: Count(%q) = %d, tiktoken-go %d", enc, text, got, want)
			}
		})
	}
}

// Segmenting at a space after a non-space must not change the count: long natural
// text (which is cut many times) counts exactly as pkoukk counts it in one piece.
func TestSegmentationExactOnNaturalText(t *testing.T) {
	words := []string{"the", "Quick", "brown", "fox's", "jumps", "over", "12345", "lazy", "dogs,", "and",
		"élan", "naïve", "中文字符", "emoji😀", "tab\there", "new\nline", "  double", "end.", "''", "x"}
	for _, enc := range []string{CL100kBase, O200kBase} {
		tok := segmenter(t, enc)
		rapid.Check(t, func(rt *rapid.T) {
			n := rapid.IntRange(1, 6000).Draw(rt, "words")
			seed := rapid.IntRange(0, len(words)-1).Draw(rt, "seed")
			var sb strings.Builder
			for i := range n {
				if i > 0 {
					sb.WriteByte(' ')
				}
				sb.WriteString(words[(seed+i*7+i*i)%len(words)])
			}
			text := sb.String()
			if got, want := tok.Count(text), rawCount(tok, text); got != want {
				rt.Fatalf("%s: segmented count %d, unsegmented %d (len %d)", enc, got, want, len(text))
			}
		})
	}
}

func TestNextSegmentBounds(t *testing.T) {
	for _, text := range []string{
		strings.Repeat("a", 100_000),
		strings.Repeat("😀", 30_000),
		strings.Repeat(" ", 50_000),
		strings.Repeat("7", 50_000),
		strings.Repeat("ab!", 20_000),
		strings.Repeat("word ", 20_000),
	} {
		total := 0
		for rest := text; rest != ""; {
			var seg string
			seg, rest = nextSegment(rest)
			if seg == "" || len(seg) > maxSegment+4 {
				t.Fatalf("segment of %d bytes (text %.10q…)", len(seg), text)
			}
			total += len(seg)
		}
		if total != len(text) {
			t.Fatalf("segments cover %d of %d bytes", total, len(text))
		}
	}
}

// Forced cuts inside long runs change the count by little: measured against the
// unsegmented count on inputs small enough for pkoukk's quadratic merge.
func TestSegmentationErrorOnPathologicalText(t *testing.T) {
	const size = 8 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	letters := make([]byte, size)
	for i := range letters {
		letters[i] = byte('a' + rng.IntN(26))
	}
	var mixed, hanzi strings.Builder
	for mixed.Len() < size {
		mixed.WriteString([]string{"😀", "é", "中", "x", "ß", "🚀"}[rng.IntN(6)])
	}
	common := []rune("的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事")
	for hanzi.Len() < size {
		hanzi.WriteRune(common[rng.IntN(len(common))])
	}
	for _, enc := range []string{CL100kBase, O200kBase} {
		tok := segmenter(t, enc)
		for name, text := range map[string]string{
			"letters": strings.Repeat("a", size),
			"emoji":   strings.Repeat("😀", size/4),
			"spaces":  strings.Repeat(" ", size),
			"digits":  strings.Repeat("7", 3*size),
			"cjk":     strings.Repeat("中文字符", size/12),
			"dashes":  strings.Repeat("-", size),
			"random":  string(letters),
			"unicode": mixed.String(),
			"hanzi":   hanzi.String(),
		} {
			got, want := tok.Count(text), rawCount(tok, text)
			cuts := len(text) / maxRun
			diff := got - want
			if diff < 0 {
				diff = -diff
			}
			// At most 2 tokens per forced cut.
			if diff > 2*cuts {
				t.Errorf("%s %s: segmented %d, exact %d: off by %d over %d forced cuts", enc, name, got, want, diff, cuts)
			}
			t.Logf("%s %-7s: segmented %d, exact %d (%+d over ~%d forced cuts)", enc, name, got, want, got-want, cuts)
		}
	}
}
