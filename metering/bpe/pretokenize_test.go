package bpe

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// The patterns pkoukk/tiktoken-go compiles with regexp2 (its encoding.go), which is
// what the pre-tokenizers must reproduce.
const (
	cl100kPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	o200kPattern  = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?` +
		`|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?` +
		`|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

var splitters = []struct {
	name    string
	pattern string
	next    func(string, int) int
}{
	{Cl100kBase, cl100kPattern, nextCl100k},
	{O200kBase, o200kPattern, nextO200k},
}

// regexpPieces cuts text with regexp2 the way pkoukk does: on runes.
func regexpPieces(t testing.TB, re *regexp2.Regexp, text string) []string {
	t.Helper()
	runes := []rune(text)
	var pieces []string
	m, err := re.FindRunesMatch(runes)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		pieces = append(pieces, string(runes[m.Index:m.Index+m.Length]))
	}
	if err != nil {
		t.Fatalf("regexp2: %v", err)
	}
	return pieces
}

func ourPieces(next func(string, int) int, text string) []string {
	loadClassTable()
	if !utf8.ValidString(text) {
		text = toValidUTF8(text)
	}
	var pieces []string
	for i := 0; i < len(text); {
		end := next(text, i)
		pieces = append(pieces, text[i:end])
		i = end
	}
	return pieces
}

// TestClassesMatchRegexp2 checks each character class against regexp2 on every rune
// where some Unicode table the classes are built from starts or ends a range, and
// their neighbours, plus all of Latin-1: classes only change at those runes.
func TestClassesMatchRegexp2(t *testing.T) {
	loadClassTable()
	classes := []struct {
		pattern string
		ours    func(uint8) bool
	}{
		{`\p{L}`, func(c uint8) bool { return c&classLetter != 0 }},
		{`\p{N}`, func(c uint8) bool { return c&classNumber != 0 }},
		{`\s`, func(c uint8) bool { return c&classSpace != 0 }},
		{`[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`, func(c uint8) bool { return c&classUpper != 0 }},
		{`[\p{Ll}\p{Lm}\p{Lo}\p{M}]`, func(c uint8) bool { return c&classLower != 0 }},
		{`[^\r\n\p{L}\p{N}]`, notLetterNumberNewline},
		{`[^\s\p{L}\p{N}]`, isSymbol},
	}
	runes := map[rune]bool{}
	for r := rune(0); r < 0x100; r++ {
		runes[r] = true
	}
	tables := []*unicode.RangeTable{unicode.L, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Lm,
		unicode.Lo, unicode.M, unicode.N, unicode.White_Space}
	for _, table := range tables {
		for _, r := range table.R16 {
			for _, c := range []rune{rune(r.Lo) - 1, rune(r.Lo), rune(r.Hi), rune(r.Hi) + 1} {
				runes[c] = true
			}
		}
		for _, r := range table.R32 {
			for _, c := range []rune{rune(r.Lo) - 1, rune(r.Lo), rune(r.Hi), rune(r.Hi) + 1} {
				runes[c] = true
			}
		}
	}
	if len(runes) < 2000 {
		t.Fatalf("only %d runes to check: the Unicode tables look empty", len(runes))
	}
	for _, cl := range classes {
		re := regexp2.MustCompile(`^`+cl.pattern+`$`, regexp2.None)
		for r := range runes {
			if r < 0 || r > unicode.MaxRune || (r >= 0xD800 && r <= 0xDFFF) {
				continue
			}
			want, err := re.MatchRunes([]rune{r})
			if err != nil {
				t.Fatal(err)
			}
			if got := cl.ours(classTable[r]); got != want {
				t.Errorf("%s on U+%04X: got %v, regexp2 says %v", cl.pattern, r, got, want)
			}
		}
	}
}

// TestContractionCaseFolding checks which runes regexp2's (?i:…) folds onto the
// letters of the contractions; lowerAt must fold exactly those.
func TestContractionCaseFolding(t *testing.T) {
	re := regexp2.MustCompile(`^(?i:'s|'t|'re|'ve|'m|'ll|'d)$`, regexp2.None)
	checked := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		lower := unicode.ToLower(r)
		if !strings.ContainsRune("stmdrevl", lower) {
			continue
		}
		// Only runes that fold onto a contraction letter can matter; try each in
		// every position of every contraction.
		for _, c := range []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} {
			for pos := 1; pos < len(c); pos++ {
				if rune(c[pos]) != lower {
					continue
				}
				checked++
				text := c[:pos] + string(r) + c[pos+1:]
				want, _ := re.MatchString(text)
				got := contractionLen(text, 0) == len(text)
				if got != want {
					t.Errorf("contraction %q: got %v, regexp2 says %v", text, got, want)
				}
			}
		}
	}
	if checked < 20 { // both cases of each of the 8 letters, at least
		t.Fatalf("checked only %d contractions", checked)
	}
}

// alphabet holds runes of every class the patterns distinguish, and the characters
// they name literally, so random strings over it reach every branch.
var alphabet = []rune{
	'a', 'b', 'z', 's', 't', 'r', 'e', 'v', 'm', 'l', 'd', 'A', 'S', 'T', 'R', 'E', 'V', 'M', 'L', 'D', 'Z',
	'0', '1', '9', '\'', ' ', ' ', ' ', '\t', '\r', '\n', '\v', '\f', '/', '.', ',', '!', '-', '(', '"', '_',
	'Ä', 'ß', 'é', 'ǅ', 'ʰ', 'ˆ', '中', '文', 'ا', 'ب', 'あ', 'ア', 'ー', 'ๆ', 'ก',
	'\u0301', '\u0903', '\u20DD', '\u0E31', // marks: Mn, Mc, Me, Thai Mn
	'٣', 'Ⅻ', '½', '²', // numbers: Nd, Nl, No
	'\u00A0', '\u3000', '\u2028', '\u0085', '\u200B', '\u200D', '\uFE0F', '\uFFFD',
	'😀', '🇺', '🇸', 'K', 'İ', 'ſ', 'Ω',
}

func randomText(r *rand.Rand, maxRunes int) string {
	var b strings.Builder
	n := r.IntN(maxRunes + 1)
	for range n {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// TestPiecesMatchRegexp2 compares the pre-tokenizers with regexp2 on random strings.
func TestPiecesMatchRegexp2(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for _, sp := range splitters {
		re := regexp2.MustCompile(sp.pattern, regexp2.None)
		for range n {
			text := randomText(rng, 24)
			want := regexpPieces(t, re, text)
			got := ourPieces(sp.next, text)
			if !slicesEqual(got, want) {
				t.Fatalf("%s %q:\n got %q\nwant %q", sp.name, text, got, want)
			}
		}
	}
}

// TestPiecesExamples pins down the subtle cases of the patterns.
func TestPiecesExamples(t *testing.T) {
	tests := []struct {
		name, text string
		cl100k     []string
		o200k      []string
	}{
		{"contraction", "don't", []string{"don", "'t"}, []string{"don't"}},
		{"contraction upper", "WE'LL", []string{"WE", "'LL"}, []string{"WE'LL"}},
		{"contraction alone", "'s x", []string{"'s", " x"}, []string{"'s", " x"}},
		{"contraction then letters", "'sup", []string{"'s", "up"}, []string{"'sup"}},
		{"camel case", "camelCaseHTTPServer", []string{"camelCaseHTTPServer"}, []string{"camel", "Case", "HTTPServer"}},
		{"digits", "1234567", []string{"123", "456", "7"}, []string{"123", "456", "7"}},
		{"space before digits", "a 12", []string{"a", " ", "12"}, []string{"a", " ", "12"}},
		{"spaces before word", "a   b", []string{"a", "  ", " b"}, []string{"a", "  ", " b"}},
		{"trailing spaces", "a  ", []string{"a", "  "}, []string{"a", "  "}},
		{"newlines", "a \n\n b", []string{"a", " \n\n", " b"}, []string{"a", " \n\n", " b"}},
		{"crlf", "x\r\n\r\ny", []string{"x", "\r\n\r\n", "y"}, []string{"x", "\r\n\r\n", "y"}},
		{"tab word", "\tfoo", []string{"\tfoo"}, []string{"\tfoo"}},
		{"punctuation", "...foo", []string{"...", "foo"}, []string{"...", "foo"}},
		{"punctuation newline", "};\n}", []string{"};\n", "}"}, []string{"};\n", "}"}},
		{"slash", "a//b", []string{"a", "//", "b"}, []string{"a", "//", "b"}},
		{"path", "x/\ny", []string{"x", "/\n", "y"}, []string{"x", "/\n", "y"}},
		{"mark alone", "\u0301AB ", []string{"\u0301AB", " "}, []string{"\u0301", "AB", " "}},
		{"invalid utf8", "a\xffb", []string{"a", "\uFFFDb"}, []string{"a", "\uFFFDb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ourPieces(nextCl100k, tt.text); !slicesEqual(got, tt.cl100k) {
				t.Errorf("cl100k: got %q, want %q", got, tt.cl100k)
			}
			if got := ourPieces(nextO200k, tt.text); !slicesEqual(got, tt.o200k) {
				t.Errorf("o200k: got %q, want %q", got, tt.o200k)
			}
		})
	}
}

func TestToValidUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc", "abc"},
		{"\xff", "\uFFFD"},
		{"a\xff\xfeb", "a\uFFFD\uFFFDb"},
		{"\xe2\x82", "\uFFFD\uFFFD"},           // truncated sequence: one U+FFFD per byte
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // UTF-16 surrogate
		{"\uFFFD", "\uFFFD"},
	}
	for _, tt := range tests {
		if got := toValidUTF8(tt.in); got != tt.want {
			t.Errorf("toValidUTF8(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := string([]rune(tt.in)); got != tt.want {
			t.Errorf("[]rune(%q) = %q, want %q: the model of pkoukk's behaviour is wrong", tt.in, got, tt.want)
		}
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
