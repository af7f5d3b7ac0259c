package metering

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// fakeTokenizer counts with a function, for tests that need predictable counts;
// ends, when set, tells where its tokens end (tokenEnder).
type fakeTokenizer struct {
	count    func(string) int
	ends     func(dst []int, s string) []int
	encoding string
}

func (f fakeTokenizer) Count(s string) int { return f.count(s) }
func (f fakeTokenizer) Encoding() string   { return f.encoding }
func (f fakeTokenizer) TokenEnds(dst []int, s string) []int {
	if f.ends == nil {
		return dst
	}
	return f.ends(dst, s)
}

// wordTokenizer counts whitespace-separated words: easy to compute by hand. Each
// word is a token that ends where the word does.
var wordTokenizer = fakeTokenizer{count: func(s string) int { return len(strings.Fields(s)) }, ends: wordEnds, encoding: O200kBase}

// wordEnds appends the end of each word of s, as strings.Fields splits it.
func wordEnds(dst []int, s string) []int {
	inWord := false
	for i, r := range s {
		space := unicode.IsSpace(r)
		if inWord && space {
			dst = append(dst, i)
		}
		inWord = !space
	}
	if inWord {
		dst = append(dst, len(s))
	}
	return dst
}

// tokenizer returns a real tiktoken tokenizer or fails the test.
func tokenizer(t testing.TB, encoding string) Tokenizer {
	t.Helper()
	tok, err := TokenizerFor(encoding)
	if err != nil {
		t.Fatalf("TokenizerFor(%q): %v", encoding, err)
	}
	return tok
}

// fixture reads a file under testdata.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fataler is what the helpers need of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// mustParse parses a request body or fails the test.
func mustParse(t fataler, ep Endpoint, body string) *Request {
	t.Helper()
	r, err := ParseRequest(ep, []byte(body))
	if err != nil {
		t.Fatalf("ParseRequest(%s, %s): %v", ep, body, err)
	}
	return r
}
