package metering

import (
	"math"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/money"
	"pgregory.net/rapid"
)

func TestCostPerClass(t *testing.T) {
	// USD per 1M tokens: input 1.10, cached 0.275, audio in 40, output 4.40,
	// reasoning 8.00, audio out 80 — distinct so each class is visible in the sum.
	p := Price{Input: 1_100_000, CachedInput: 275_000, AudioInput: 40_000_000,
		Output: 4_400_000, Reasoning: 8_000_000, AudioOutput: 80_000_000}
	tests := []struct {
		name string
		t    Tokens
		want money.Micros
	}{
		// (2006-1920)×1.10 + 1920×0.275 + (300-256)×4.40 + 256×8.00 micro-USD
		// = 94.6 + 528 + 193.6 + 2048 = 2864.2 → ceil → 2865
		{"cached and reasoning", Tokens{Input: 2006, CachedInput: 1920, Output: 300, Reasoning: 256}, 2865},
		// 10×1.10 + 5×40 + 3×4.40 + 2×80 = 11 + 200 + 13.2 + 160 = 384.2 → 385
		{"audio", Tokens{Input: 15, AudioInput: 5, Output: 5, AudioOutput: 2}, 385},
		// 1M input tokens at 1.10 USD/1M: exactly 1.10 USD, no rounding up
		{"exact", Tokens{Input: 1_000_000}, 1_100_000},
		{"zero", Tokens{}, 0},
		// sub-classes larger than their class are clipped: all 10 input tokens cached
		{"cached clipped", Tokens{Input: 10, CachedInput: 50}, 3}, // 10×0.275 = 2.75 → 3
		{"negatives ignored", Tokens{Input: -5, Output: -1, CachedInput: -3}, 0},
	}
	for _, tt := range tests {
		if got := p.Cost(tt.t); got != tt.want {
			t.Errorf("%s: Cost(%+v) = %d, want %d", tt.name, tt.t, got, tt.want)
		}
	}
}

// Rounding happens once per request: two classes of 0.4 micro-USD each cost 1, not 2.
func TestCostRoundsOncePerRequest(t *testing.T) {
	p := Price{Input: 400_000, CachedInput: 400_000, Output: 400_000, Reasoning: 400_000}
	if got := p.Cost(Tokens{Input: 1, Output: 1}); got != 1 {
		t.Errorf("Cost = %d, want 1 (ceil of 0.8 once)", got)
	}
	if got := p.Cost(Tokens{Input: 2, CachedInput: 1, Output: 2, Reasoning: 1}); got != 2 {
		t.Errorf("Cost = %d, want 2 (ceil of 1.6 once, not 4 per-class ceilings)", got)
	}
}

func TestCostSaturates(t *testing.T) {
	huge := money.Micros(math.MaxInt64)
	p := Price{Input: huge, CachedInput: huge, AudioInput: huge, Output: huge, Reasoning: huge, AudioOutput: huge}
	max := int64(math.MaxInt64)
	for _, tt := range []Tokens{
		{Input: max, Output: max},
		{Input: max, CachedInput: max / 3, AudioInput: max / 3, Output: max, Reasoning: max / 3, AudioOutput: max / 3},
	} {
		if got := p.Cost(tt); got != money.MaxAmount {
			t.Errorf("Cost(%+v) = %d, want saturation at %d", tt, got, money.MaxAmount)
		}
	}
}

// Cost is monotone and matches the exact rational formula.
func TestCostProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.Int64Range(0, 10_000_000)
		pr := rapid.Int64Range(0, 100_000_000)
		p := Price{Input: money.Micros(pr.Draw(rt, "pi")), CachedInput: money.Micros(pr.Draw(rt, "pc")),
			Output: money.Micros(pr.Draw(rt, "po")), Reasoning: money.Micros(pr.Draw(rt, "pr"))}
		in, out := n.Draw(rt, "in"), n.Draw(rt, "out")
		tok := Tokens{Input: in, CachedInput: rapid.Int64Range(0, in).Draw(rt, "cached"),
			Output: out, Reasoning: rapid.Int64Range(0, out).Draw(rt, "reasoning")}
		sum := (tok.Input-tok.CachedInput)*int64(p.Input) + tok.CachedInput*int64(p.CachedInput) +
			(tok.Output-tok.Reasoning)*int64(p.Output) + tok.Reasoning*int64(p.Reasoning) // < 2^63 here
		want := money.Micros((sum + 999_999) / 1_000_000)
		if got := p.Cost(tok); got != want {
			rt.Fatalf("Cost(%+v) = %d, want %d", tok, got, want)
		}
		more := tok
		more.Output++
		if p.Cost(more) < p.Cost(tok) {
			rt.Fatalf("Cost decreased with one more output token")
		}
	})
}

func TestMaxOutputFor(t *testing.T) {
	p := Price{Input: 1_000_000, CachedInput: 1_000_000, Output: 2_000_000, Reasoning: 2_000_000, MaxOutputTokens: 1000}
	tests := []struct {
		name    string
		input   Tokens
		choices int64
		budget  money.Micros
		want    int64
	}{
		{"budget for 40 outputs", Tokens{Input: 20}, 1, 100, 40}, // 20 + 2×40 = 100
		{"two choices", Tokens{Input: 20}, 2, 100, 20},           // 20 + 2×2×20 = 100
		{"capped at the model max", Tokens{Input: 1}, 1, money.Dollar, 1000},
		{"input alone too dear", Tokens{Input: 200}, 1, 100, 0},
		{"zero choices means one", Tokens{Input: 20}, 0, 100, 40},
		{"huge n never wraps", Tokens{Input: 20}, math.MaxInt64, 100, 0},
		{"huge n, huge budget", Tokens{Input: 20}, 1 << 40, money.MaxAmount, 1000},
	}
	for _, tt := range tests {
		if got := p.MaxOutputFor(tt.input, tt.choices, tt.budget); got != tt.want {
			t.Errorf("%s: MaxOutputFor = %d, want %d", tt.name, got, tt.want)
		}
	}
	free := Price{Input: 1}
	if got := free.MaxOutputFor(Tokens{Input: 1}, 1, 1); got != DefaultMaxOutputTokens {
		t.Errorf("free output: MaxOutputFor = %d, want the default max %d", got, DefaultMaxOutputTokens)
	}
}

func TestResolve(t *testing.T) {
	gpt4o := Price{Input: 2_500_000, Output: 10_000_000}
	gpt4 := Price{Input: 30_000_000, Output: 60_000_000}
	mini := Price{Input: 150_000, Output: 600_000}
	p, err := NewPricing(map[string]Price{"gpt-4o": gpt4o, "gpt-4": gpt4, "gpt-4o-mini": mini},
		map[string]string{"fast": "gpt-4o-mini"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		model, name string
		price       Price
		ok          bool
	}{
		{"gpt-4o", "gpt-4o", gpt4o, true},
		{"gpt-4o-2024-08-06", "gpt-4o", gpt4o, true},
		{"gpt-4-0613", "gpt-4", gpt4, true},
		{"gpt-4o-mini-2024-07-18", "gpt-4o-mini", mini, true},
		{"fast", "gpt-4o-mini", mini, true},
		{"fast-2025-01-01", "gpt-4o-mini", mini, true},
		{"gpt-4-turbo", "", Price{}, false},
		{"gpt-5", "", Price{}, false},
		{"", "", Price{}, false},
	}
	for _, tt := range tests {
		name, price, ok := p.Resolve(tt.model)
		if name != tt.name || price != tt.price || ok != tt.ok {
			t.Errorf("Resolve(%q) = %q, %+v, %v; want %q, %+v, %v", tt.model, name, price, ok, tt.name, tt.price, tt.ok)
		}
	}
	if got := p.Models(); strings.Join(got, ",") != "gpt-4,gpt-4o,gpt-4o-mini" {
		t.Errorf("Models = %v", got)
	}

	fallback := Price{Input: 1}
	pf, err := NewPricing(map[string]Price{"gpt-4o": gpt4o}, nil, &fallback)
	if err != nil {
		t.Fatal(err)
	}
	if name, price, ok := pf.Resolve("llama-3"); name != "llama-3" || price != fallback || !ok {
		t.Errorf("fallback: %q %+v %v", name, price, ok)
	}
	if _, _, ok := pf.Resolve(""); ok {
		t.Error("the empty model must not resolve to the fallback")
	}
}

func TestNewPricingBadAlias(t *testing.T) {
	_, err := NewPricing(map[string]Price{"gpt-4o": {}}, map[string]string{"b": "nope", "a": "missing"}, nil)
	if err == nil || !strings.Contains(err.Error(), `alias "a" points to "missing"`) || !strings.Contains(err.Error(), `alias "b"`) {
		t.Fatalf("error = %v, want both bad aliases named", err)
	}
}
