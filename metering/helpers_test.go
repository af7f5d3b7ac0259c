package metering

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTokenizer counts with a function, for tests that need predictable counts.
type fakeTokenizer struct {
	count    func(string) int
	encoding string
}

func (f fakeTokenizer) Count(s string) int { return f.count(s) }
func (f fakeTokenizer) Encoding() string   { return f.encoding }

// wordTokenizer counts whitespace-separated words: easy to compute by hand.
var wordTokenizer = fakeTokenizer{count: func(s string) int { return len(strings.Fields(s)) }, encoding: O200kBase}

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
