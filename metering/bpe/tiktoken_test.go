package bpe

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
	"pgregory.net/rapid"
)

var encodingNames = []string{O200kBase, Cl100kBase}

var (
	referenceOnce sync.Once
	referenceMu   sync.Mutex
	references    = map[string]*tiktoken.Tiktoken{}
)

// reference returns pkoukk/tiktoken-go's encoding, with the offline rank files.
func reference(t testing.TB, name string) *tiktoken.Tiktoken {
	t.Helper()
	referenceOnce.Do(func() { tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader()) })
	referenceMu.Lock()
	defer referenceMu.Unlock()
	if ref, ok := references[name]; ok {
		return ref
	}
	ref, err := tiktoken.GetEncoding(name)
	if err != nil {
		t.Fatalf("tiktoken.GetEncoding(%q): %v", name, err)
	}
	references[name] = ref
	return ref
}

func mustGet(t testing.TB, name string) *Encoding {
	t.Helper()
	e, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// compareWithTiktoken fails t unless Encode gives pkoukk's token ids and Count their
// number.
func compareWithTiktoken(t testing.TB, e *Encoding, ref *tiktoken.Tiktoken, what, text string) {
	t.Helper()
	want := ref.EncodeOrdinary(text)
	got := e.Encode(text)
	if !slicesEqual(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s %s: tokens differ from tiktoken at index %d of %d/%d: got %v…, want %v…",
			e.Name(), what, i, len(got), len(want), got[i:min(len(got), i+5)], want[i:min(len(want), i+5)])
		return
	}
	if n := e.Count(text); n != len(want) {
		t.Errorf("%s %s: Count = %d, tiktoken gives %d tokens", e.Name(), what, n, len(want))
	}
}

// TestCorpusMatchesTiktoken compares token ids with pkoukk/tiktoken-go for every line
// and every whole file of the corpus, on both encodings.
func TestCorpusMatchesTiktoken(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*.txt")
	if err != nil || len(files) < 8 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	for _, name := range encodingNames {
		e, ref := mustGet(t, name), reference(t, name)
		tokens := 0
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			text := string(data)
			compareWithTiktoken(t, e, ref, file, text)
			tokens += e.Count(text)
			for i, line := range strings.SplitAfter(text, "\n") {
				compareWithTiktoken(t, e, ref, file+":"+strconv.Itoa(i+1), line)
			}
		}
		t.Logf("%s: %d files, %d tokens", name, len(files), tokens)
	}
}

// TestEdgeCasesMatchTiktoken covers inputs too awkward for the corpus files.
func TestEdgeCasesMatchTiktoken(t *testing.T) {
	cases := []string{
		"", " ", "  ", "\n", "\r\n", "\r", "\t", "a", "'", "''", "'s", "'S", "'Re", "'lL", "'x",
		"<|endoftext|>", "<|endofprompt|> <|fim_prefix|>x<|fim_middle|>y<|fim_suffix|>",
		"\x00", "\x00\x01\x02", "\xff", "\xc3", "\xc3\xa9", "\xed\xa0\x80", "\xef\xbf\xbd",
		"a\r\n\r\n\r\nb", "x \r\n y", "x\n \n \ny", "trailing  ", "\u00a0\u00a0x", "x\u3000\u3000",
		"\u0301", "\u0301\u0301x", "A\u0301", "ǅa", "ʰʰʰ", "中文", "ＡＢＣ", "٣٣٣٣", "ⅫⅫ",
		"1/2", "a/\n/b", "// comment\n", "https://example.com/a/b?c=d&e=f#g",
		strings.Repeat("a", 300), strings.Repeat(" ", 300) + "x", strings.Repeat("\n", 300),
		strings.Repeat("ab", 200), strings.Repeat("🎉", 100), strings.Repeat("1", 301),
		strings.Repeat("é", 200), strings.Repeat("\u0301", 200), strings.Repeat("!?", 150),
	}
	for _, name := range encodingNames {
		e, ref := mustGet(t, name), reference(t, name)
		for _, text := range cases {
			compareWithTiktoken(t, e, ref, strquote(text), text)
		}
	}
}

// TestRandomTextMatchesTiktoken compares with pkoukk/tiktoken-go on random strings
// over an alphabet of every character class the pre-tokenizers distinguish, plus
// stray bytes that are not UTF-8.
func TestRandomTextMatchesTiktoken(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for _, name := range encodingNames {
		e, ref := mustGet(t, name), reference(t, name)
		for range n {
			text := randomText(rng, 40)
			if rng.IntN(8) == 0 {
				i := rng.IntN(len(text) + 1)
				text = text[:i] + string([]byte{byte(0x80 + rng.IntN(0x80))}) + text[i:]
			}
			compareWithTiktoken(t, e, ref, strquote(text), text)
			if t.Failed() {
				return
			}
		}
	}
}

func strquote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return "\"" + strings.ToValidUTF8(s, "?") + "\""
}

// FuzzCountMatchesTiktoken compares Encode and Count with pkoukk/tiktoken-go on
// arbitrary input up to 4 KiB, on both encodings.
func FuzzCountMatchesTiktoken(f *testing.F) {
	for _, s := range []string{
		"Hello, world! I'm here.", "don't STOP'LL 'Ve", "camelCaseHTTPServer x86_64",
		"  foo\n\n  bar\t\r\n x  ", "日本語のテキストです。한국어", "👨‍👩‍👧‍👦🇺🇸", "\xff\xfe\xc3a",
		"1234567 3.14159", "A\u0301B\u0301c ǅa", "\u00a0\u2028\u0085 x", "a//b/\n/c",
		"<|endoftext|>", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	} {
		f.Add(s)
	}
	refs := map[string]*tiktoken.Tiktoken{}
	encs := map[string]*Encoding{}
	for _, name := range encodingNames {
		refs[name], encs[name] = reference(f, name), mustGet(f, name)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 4096 {
			return
		}
		for _, name := range encodingNames {
			compareWithTiktoken(t, encs[name], refs[name], strquote(text), text)
		}
	})
}

// TestRoundTrip: decoding Encode's tokens gives back the text (with invalid UTF-8
// replaced, as tiktoken does), and Count agrees with Encode.
func TestRoundTrip(t *testing.T) {
	encs := []*Encoding{mustGet(t, O200kBase), mustGet(t, Cl100kBase)}
	rapid.Check(t, func(t *rapid.T) {
		var text string
		if rapid.Bool().Draw(t, "fromAlphabet") {
			text = string(rapid.SliceOfN(rapid.SampledFrom(alphabet), 0, 64).Draw(t, "runes"))
		} else {
			text = rapid.String().Draw(t, "text")
		}
		if rapid.Bool().Draw(t, "invalid") {
			text += "\xff\xc3"
		}
		want := []byte(string([]rune(text)))
		for _, e := range encs {
			tokens := e.Encode(text)
			got, err := e.decode(tokens)
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			if string(got) != string(want) {
				t.Fatalf("%s: decode(Encode(%q)) = %q", e.Name(), text, got)
			}
			if n := e.Count(text); n != len(tokens) {
				t.Fatalf("%s: Count(%q) = %d, Encode gives %d tokens", e.Name(), text, n, len(tokens))
			}
			if !utf8.Valid(got) {
				t.Fatalf("%s: decoded text is not valid UTF-8", e.Name())
			}
		}
	})
}

// TestTokenEnds: AppendTokenEnds gives one offset per token of Encode, rising to
// len(text), each the end of that token's bytes; invalid UTF-8 gives none.
func TestTokenEnds(t *testing.T) {
	encs := []*Encoding{mustGet(t, O200kBase), mustGet(t, Cl100kBase)}
	rapid.Check(t, func(t *rapid.T) {
		text := string(rapid.SliceOfN(rapid.SampledFrom(alphabet), 0, 64).Draw(t, "runes"))
		for _, e := range encs {
			tokens := e.Encode(text)
			ends := e.AppendTokenEnds([]int{-1}, text)
			if len(ends) != len(tokens)+1 || ends[0] != -1 {
				t.Fatalf("%s: %d ends (after the -1 kept) for %d tokens of %q", e.Name(), len(ends)-1, len(tokens), text)
			}
			at := 0
			for i, tok := range tokens {
				b, err := e.decode([]int{tok})
				if err != nil {
					t.Fatal(err)
				}
				at += len(b)
				if ends[i+1] != at {
					t.Fatalf("%s: token %d of %q ends at %d, AppendTokenEnds says %d", e.Name(), i, text, at, ends[i+1])
				}
			}
			if at != len(text) {
				t.Fatalf("%s: tokens cover %d of %d bytes", e.Name(), at, len(text))
			}
		}
	})
	for _, e := range encs {
		if got := e.AppendTokenEnds(nil, "ok\xff"); len(got) != 0 {
			t.Errorf("%s: invalid UTF-8 gave ends %v", e.Name(), got)
		}
	}
}

// TestConcurrentUse counts from many goroutines at once (run with -race): every
// goroutine must see the single-threaded counts, including long pieces that use the
// pooled scratch.
func TestConcurrentUse(t *testing.T) {
	texts := []string{
		"The quick brown fox jumps over the lazy dog. It's 12:30!",
		strings.Repeat("supercalifragilistic", 40),
		strings.Repeat("🎉", 300),
		"def f(x):\n    return x ** 2\n",
	}
	for _, name := range encodingNames {
		e := mustGet(t, name)
		want := make([]int, len(texts))
		for i, text := range texts {
			want[i] = e.Count(text)
		}
		var wg sync.WaitGroup
		errs := make(chan string, 64)
		for g := range 8 {
			wg.Go(func() {
				for k := range 50 {
					i := (g + k) % len(texts)
					if got := e.Count(texts[i]); got != want[i] {
						errs <- name + ": concurrent Count differs"
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for msg := range errs {
			t.Fatal(msg)
		}
	}
}

func TestGet(t *testing.T) {
	tests := []struct {
		name    string
		wantErr bool
	}{
		{O200kBase, false},
		{Cl100kBase, false},
		{"p50k_base", true},
		{"", true},
		{"O200K_BASE", true},
	}
	for _, tt := range tests {
		e, err := Get(tt.name)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.name)) {
				t.Errorf("Get(%q): error %v, want one naming the encoding", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Get(%q): %v", tt.name, err)
		}
		if e.Name() != tt.name {
			t.Errorf("Get(%q).Name() = %q", tt.name, e.Name())
		}
		if again, _ := Get(tt.name); again != e {
			t.Errorf("Get(%q) twice gave two encodings", tt.name)
		}
	}
}

// TestCountDoesNotAllocate holds the hot path to zero allocations on ordinary text,
// including pieces that need merging.
func TestCountDoesNotAllocate(t *testing.T) {
	text := "Tokenization of unusual words like floccinaucinihilipilification, 1234 🎉 naïve 中文."
	for _, name := range encodingNames {
		e := mustGet(t, name)
		if allocs := testing.AllocsPerRun(100, func() { e.Count(text) }); allocs != 0 {
			t.Errorf("%s: Count allocates %.1f times per call", name, allocs)
		}
	}
}
