package metering

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/money"
)

// limitPrice: $1 per 1M input tokens, $0.50 cached, $4 output, $8 reasoning (the
// dearest output rate, which the bound prices all output at).
var limitPrice = Price{Input: 1_000_000, CachedInput: 500_000, AudioInput: 1_000_000, Output: 4_000_000, Reasoning: 8_000_000, AudioOutput: 4_000_000}

func TestRequestLimit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ep        Endpoint
		body      string
		clampedTo int64
		want      Limit
	}{
		{"the client's cap", ChatCompletions, `{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, 0,
			Limit{PerChoice: 16, Choices: 1}},
		{"the clamp's cap", ChatCompletions, `{"model":"m","max_tokens":16,"n":3,"messages":[{"role":"user","content":"hi"}]}`, 5,
			Limit{PerChoice: 5, Choices: 3}},
		{"no cap: the model's largest output", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 0,
			Limit{PerChoice: 4096, Choices: 1}},
		{"completions: n × prompts", Completions, `{"model":"m","prompt":["a","b"],"n":2,"max_tokens":7}`, 0,
			Limit{PerChoice: 7, Choices: 4}},
		{"completions with echo: not cut", Completions, `{"model":"m","prompt":"a","echo":true,"max_tokens":7}`, 0,
			Limit{PerChoice: 7, Choices: 1, noCut: true}},
		{"responses", Responses, `{"model":"m","input":"hi","max_output_tokens":32}`, 0,
			Limit{PerChoice: 32, Choices: 1}},
		{"embeddings: no output", Embeddings, `{"model":"m","input":"hi"}`, 0,
			Limit{Choices: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := limitPrice
			p.MaxOutputTokens = 4096
			in := Tokens{Input: 10}
			got := mustParse(t, tc.ep, tc.body).Limit(p, in, tc.clampedTo, 777)
			tc.want.Price, tc.want.Input, tc.want.Hold = p, in, 777
			if got != tc.want {
				t.Fatalf("Limit = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLimitBill(t *testing.T) {
	// 100 prompt tokens, 16 output tokens per choice: MaxCost = 100×1 + 16×8 = 228
	// micros (the estimate's rule: all output at the reasoning rate).
	l := Limit{PerChoice: 16, Choices: 1, Price: limitPrice, Input: Tokens{Input: 100}, Hold: 1000}
	if got := l.MaxCost(); got != 228 {
		t.Fatalf("MaxCost = %d, want 228", got)
	}
	upstream := func(t Tokens) Result {
		return Result{Tokens: t, Source: SourceUpstream, Local: Tokens{Input: 100, Output: 16}}
	}
	for _, tc := range []struct {
		name         string
		limit        Limit
		res          Result
		billed       Tokens
		cost         money.Micros
		excess       money.Micros
		excessTokens int64
	}{
		{"honest: billed as reported", l, upstream(Tokens{Input: 100, Output: 16}),
			Tokens{Input: 100, Output: 16}, 164, 0, 0},
		{"honest with a prompt the local count missed, within the hold", l, upstream(Tokens{Input: 150, Output: 10}),
			Tokens{Input: 150, Output: 10}, 190, 0, 0},
		{"ignores the cap: the output cut to it", l, upstream(Tokens{Input: 100, Output: 5000}),
			Tokens{Input: 100, Output: 16}, 164, 20_100 - 164, 4984},
		{"usage ×10: output to the cap, then the prompt to what is left", l, upstream(Tokens{Input: 1000, CachedInput: 200, Output: 160}),
			// 1000 − 800 + 100 + 640 = 1540 claimed. With the output at 16 (64 micros)
			// and 200 cached tokens (100 micros), 64 uncached ones fit: 264 in all.
			Tokens{Input: 264, CachedInput: 200, Output: 16}, 228, 1540 - 228, 1160 - 280},
		{"reasoning past the cap", l, upstream(Tokens{Input: 100, Output: 40, Reasoning: 40}),
			Tokens{Input: 100, Output: 16, Reasoning: 16}, 228, 420 - 228, 24},
		{"local count with output cut off", l, Result{Tokens: Tokens{Input: 100, Output: 16}, Source: SourceLocal, Unrelayed: 9},
			Tokens{Input: 100, Output: 16}, 164, 36, 9},
		{"a hold below the cap's cost bounds it", Limit{PerChoice: 16, Choices: 1, Price: limitPrice, Input: Tokens{Input: 100}, Hold: 150},
			upstream(Tokens{Input: 100, Output: 16}), Tokens{Input: 86, Output: 16}, 150, 14, 14},
		{"no output endpoint: the prompt only", Limit{Choices: 1, Price: limitPrice, Input: Tokens{Input: 100}, Hold: 1000},
			upstream(Tokens{Input: 300}), Tokens{Input: 100}, 100, 200, 200},
		{"n = 2: the cap is per choice", Limit{PerChoice: 16, Choices: 2, Price: limitPrice, Input: Tokens{Input: 100}, Hold: 1000},
			upstream(Tokens{Input: 100, Output: 32}), Tokens{Input: 100, Output: 32}, 228, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.limit.Bill(tc.res)
			if b.Tokens != tc.billed || b.Cost != tc.cost || b.Excess != tc.excess || b.ExcessTokens != tc.excessTokens {
				t.Fatalf("Bill = %+v\nwant tokens %+v cost %d excess %d (%d tokens)", b, tc.billed, tc.cost, tc.excess, tc.excessTokens)
			}
			if b.Cost > tc.limit.MaxCost() {
				t.Fatalf("billed %d past MaxCost %d", b.Cost, tc.limit.MaxCost())
			}
		})
	}
}

// Whatever a response claims, its bill is within MaxCost, priced from the billed
// tokens, and the excess is exactly the claim's cost beyond it.
func TestLimitBillProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := func(label string) int64 { return rapid.Int64Range(-5, 1_000_000).Draw(t, label) } // counts: the upstream's may be anything
		m := func(label string) money.Micros { return money.Micros(rapid.Int64Range(0, 20_000_000).Draw(t, label)) }
		p := Price{Input: m("in$"), CachedInput: m("cached$"), AudioInput: m("audio$"), Output: m("out$"), Reasoning: m("reasoning$"), AudioOutput: m("audioout$")}
		l := Limit{PerChoice: rapid.Int64Range(0, 5000).Draw(t, "cap"), Choices: rapid.Int64Range(1, 8).Draw(t, "choices"),
			Price: p, Input: Tokens{Input: max(0, n("local input"))}, Hold: m("hold")}
		claim := Tokens{Input: n("input"), CachedInput: n("cached"), AudioInput: n("audio in"),
			Output: n("output"), Reasoning: n("reasoning"), AudioOutput: n("audio out")}
		res := Result{Tokens: claim, Source: SourceUpstream}
		if rapid.Bool().Draw(t, "local") {
			res.Source, res.Unrelayed = SourceLocal, max(0, n("unrelayed"))
		}
		b := l.Bill(res)
		if b.Cost < 0 || b.Cost > l.MaxCost() {
			t.Fatalf("cost %d outside [0, MaxCost %d]", b.Cost, l.MaxCost())
		}
		if b.Cost != p.Cost(b.Tokens) {
			t.Fatalf("cost %d is not the billed tokens' %d (MaxCost %d)", b.Cost, p.Cost(b.Tokens), l.MaxCost())
		}
		if p.Cost(b.Claimed) < b.Cost || b.Excess != p.Cost(b.Claimed)-b.Cost {
			t.Fatalf("excess %d, claimed cost %d, cost %d", b.Excess, p.Cost(b.Claimed), b.Cost)
		}
		if b.ExcessTokens < 0 {
			t.Fatalf("negative excess tokens %d", b.ExcessTokens)
		}
		if p.Cost(claim) <= l.MaxCost() && b.Tokens != claim {
			t.Fatalf("a claim within the bound was changed: %+v → %+v", claim, b.Tokens)
		}
	})
}
