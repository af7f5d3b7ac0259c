package bpe

import (
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
)

// countSteps counts text and returns the token count and the backtracking encoder's
// steps (candidate tokens tried, see stepCounter).
func countSteps(e *Encoding, text string) (tokens int, steps int64) {
	var c atomic.Int64
	stepCounter.Store(&c)
	defer stepCounter.Store(nil)
	tokens = e.Count(text)
	return tokens, c.Load()
}

// TestCountWorkIsLinear checks without timing that counting adversarial text does
// work linear in its length: doubling the input (1 MiB → 2 MiB) at most 2.2× the
// backtracking encoder's steps. Each input is one pre-tokenized piece of megabytes,
// the case where tiktoken's lowest-rank-first merge (pkoukk/tiktoken-go) is
// quadratic. The pre-tokenizer's scanning is not counted here: it is a single pass
// per piece by construction (see pretokenize.go), and its long runs are covered by
// the same inputs' token counts.
func TestCountWorkIsLinear(t *testing.T) {
	letters := func(rng *rand.Rand) string { return string(rune('a' + rng.IntN(26))) }
	inputs := []struct {
		name string
		make func(n int) string
	}{
		{"random letters", func(n int) string { return randomString(n, 1, letters) }},
		{"random capitals", func(n int) string {
			return randomString(n, 2, func(rng *rand.Rand) string { return string(rune('A' + rng.IntN(26))) })
		}},
		{"one letter", func(n int) string { return strings.Repeat("a", n) }},
		{"two letters", func(n int) string { return repeatTo("ab", n)[:n] }},
		{"rare letters", func(n int) string { return strings.Repeat("q", n) }},
		{"random symbols", func(n int) string {
			const sym = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
			return randomString(n, 3, func(rng *rand.Rand) string { return string(sym[rng.IntN(len(sym))]) })
		}},
		{"random CJK", func(n int) string {
			common := []rune("的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事")
			return randomString(n, 4, func(rng *rand.Rand) string { return string(common[rng.IntN(len(common))]) })
		}},
		{"one emoji", func(n int) string { return repeatTo("😀", n) }},
		{"random bytes of a letter run", func(n int) string {
			// Letters of several scripts: one \p{L} run with multi-byte characters.
			return randomString(n, 5, func(rng *rand.Rand) string {
				return []string{"é", "ß", "ж", "a", "z", "ω", "ñ", "ł"}[rng.IntN(8)]
			})
		}},
	}
	const size = 1 << 20
	for _, name := range []string{O200kBase, Cl100kBase} {
		e, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range inputs {
			t.Run(name+"/"+in.name, func(t *testing.T) {
				small, large := in.make(size), in.make(2*size)
				if e.split(small, 0) != len(small) {
					t.Fatalf("the 1 MiB input is not one pre-tokenized piece (first piece %d bytes)", e.split(small, 0))
				}
				tokS, stepsS := countSteps(e, small)
				tokL, stepsL := countSteps(e, large)
				if stepsS < int64(tokS) || stepsL < int64(tokL) {
					t.Fatalf("steps %d / %d below the token counts %d / %d: the step counter is not wired", stepsS, stepsL, tokS, tokL)
				}
				ratio := float64(stepsL) / float64(stepsS)
				t.Logf("1 MiB: %d tokens, %d steps; 2 MiB: %d tokens, %d steps (×%.3f)", tokS, stepsS, tokL, stepsL, ratio)
				if ratio > 2.2 {
					t.Errorf("doubling the input multiplied the work by %.2f (want ≤ 2.2): %d steps for 1 MiB, %d for 2 MiB", ratio, stepsS, stepsL)
				}
				// And the work per byte is bounded: a few candidate tokens per byte at most.
				if perByte := float64(stepsL) / float64(len(large)); perByte > 8 {
					t.Errorf("%.1f steps per byte", perByte)
				}
			})
		}
	}
}
