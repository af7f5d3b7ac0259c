package metering_test

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/creditgate/creditgate/metering"
)

// adversarialBodySize is the default body cap (limits.max_body_bytes, 16 MiB):
// the most text one request can make the proxy count.
const adversarialBodySize = 16 << 20

// adversarialContents are message contents built to be expensive to count:
// long runs of one character class (no spaces to split on), multi-byte runes,
// class switches at every character, escapes to decode, and plain prose as the
// baseline.
var adversarialContents = map[string]func(n int) string{
	"one letter, no spaces":  func(n int) string { return strings.Repeat("a", n) },
	"random letters":         func(n int) string { return pseudoRandom(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") },
	"digits":                 func(n int) string { return strings.Repeat("7", n) },
	"one emoji":              func(n int) string { return strings.Repeat("😀", n/4) },
	"CJK":                    func(n int) string { return pseudoRandomRunes(n/3, 0x4E00, 0x9FFF) },
	"letters and marks":      func(n int) string { return strings.Repeat("e\u0301", n/3) },
	"class switch each char": func(n int) string { return strings.Repeat("a1!", n/3) },
	"spaces":                 func(n int) string { return strings.Repeat(" ", n) },
	"newlines (escaped)":     func(n int) string { return strings.Repeat(`\n`, n/2) },
	"unicode escapes":        func(n int) string { return strings.Repeat(`\u00e9`, n/6) },
	"prose":                  func(n int) string { return strings.Repeat("The quick brown fox jumps over the lazy dog. ", n/45) },
}

func pseudoRandom(n int, alphabet string) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = alphabet[int(x)%len(alphabet)]
	}
	return string(b)
}

func pseudoRandomRunes(n int, lo, hi rune) string {
	var b strings.Builder
	x := uint32(88172645)
	for range n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b.WriteRune(lo + rune(x%uint32(hi-lo)))
	}
	return b.String()
}

// iteration makes every benchmark iteration's text distinct, so the token count
// cache never answers and every byte is tokenized.
var iteration atomic.Uint64

// BenchmarkAdversarialRequest measures what admitting one request at the body
// cap costs at worst: parsing a 16 MiB chat body whose one message is hostile
// text, and counting its tokens (metering.ParseRequest + InputTokens, what the
// proxy runs before it reserves). ns/op is the CPU time of one such request on
// one core; the slowest row is the worst case docs/reliability.md reports:
//
//	go test -run '^$' -bench AdversarialRequest -benchtime 3x ./metering
func BenchmarkAdversarialRequest(b *testing.B) {
	names := make([]string, 0, len(adversarialContents))
	for name := range adversarialContents {
		names = append(names, name)
	}
	for _, enc := range []string{metering.O200kBase, metering.CL100kBase} {
		tok, err := metering.TokenizerFor(enc)
		if err != nil {
			b.Fatal(err)
		}
		for _, name := range sortStrings(names) {
			const framing = 128
			content := adversarialContents[name](adversarialBodySize - framing)
			body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"000000` + content + `"}]}`)
			prefix := len(`{"model":"gpt-4o","messages":[{"role":"user","content":"`)
			b.Run(enc+"/"+name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					copy(body[prefix:], fmt.Sprintf("%06d", iteration.Add(1)%1_000_000))
					req, err := metering.ParseRequest(metering.ChatCompletions, body)
					if err != nil {
						b.Fatal(err)
					}
					if req.InputTokens(tok).Input == 0 {
						b.Fatal("no tokens counted")
					}
				}
			})
		}
	}
}

// Every adversarial body is accepted and counted (no error, no panic, a count
// in a sane range), at a size the unit tests can afford.
func TestAdversarialContentsAreCounted(t *testing.T) {
	tok, err := metering.TokenizerFor(metering.O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	for name, gen := range adversarialContents {
		content := gen(64 << 10)
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + content + `"}]}`
		req, err := metering.ParseRequest(metering.ChatCompletions, []byte(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := req.InputTokens(tok).Input
		if n <= 0 || n > int64(len(content))+16 {
			t.Errorf("%s: %d tokens for %d bytes", name, n, len(content))
		}
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}
