package metering

import (
	"testing"

	"github.com/creditgate/creditgate/money"
)

// estimatePrice makes the arithmetic visible: input 1 µ$ a token, output 2, reasoning
// 3 (the dearest output class), at most 100 output tokens.
var estimatePrice = Price{Input: 1_000_000, CachedInput: 1_000_000, AudioInput: 1_000_000,
	Output: 2_000_000, Reasoning: 3_000_000, AudioOutput: 2_000_000, MaxOutputTokens: 100}

// WorstCase prices output of unknown class at the dearest output rate, whichever
// class that is, and the input as Cost does.
func TestWorstCase(t *testing.T) {
	tests := []struct {
		name   string
		price  Price
		input  Tokens
		output int64
		want   money.Micros
	}{
		{"reasoning dearest", estimatePrice, Tokens{Input: 10}, 5, 10 + 5*3},
		{"audio dearest", Price{Input: 1_000_000, Output: 2_000_000, Reasoning: 2_000_000, AudioOutput: 7_000_000}, Tokens{Input: 10}, 5, 10 + 5*7},
		{"text dearest", Price{Input: 1_000_000, Output: 4_000_000, Reasoning: 2_000_000, AudioOutput: 3_000_000}, Tokens{Input: 10}, 5, 10 + 5*4},
		{"cached input at its rate", Price{Input: 2_000_000, CachedInput: 1_000_000, Output: 1_000_000}, Tokens{Input: 10, CachedInput: 4}, 0, 6*2 + 4*1},
		{"no output", estimatePrice, Tokens{Input: 10}, 0, 10},
	}
	for _, tc := range tests {
		if got := tc.price.WorstCase(tc.input, tc.output); got != tc.want {
			t.Errorf("%s: WorstCase = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// Estimate is the input plus the most output the request allows (its cap, else the
// model's largest output) per choice, at WorstCase; embeddings have no output.
func TestEstimate(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	input := Tokens{Input: 10}
	tests := []struct {
		name string
		ep   Endpoint
		body string
		want money.Micros
	}{
		{"chat without a cap: the model's max", ChatCompletions, `{"model":"m",` + msgs + `}`, 10 + 100*3},
		{"chat with max_tokens", ChatCompletions, `{"model":"m","max_tokens":7,` + msgs + `}`, 10 + 7*3},
		{"chat with both caps: the larger", ChatCompletions, `{"model":"m","max_tokens":7,"max_completion_tokens":9,` + msgs + `}`, 10 + 9*3},
		{"chat n=3", ChatCompletions, `{"model":"m","n":3,"max_tokens":7,` + msgs + `}`, 10 + 3*7*3},
		{"completions best_of × prompts", Completions, `{"model":"m","best_of":2,"prompt":["a","b"],"max_tokens":5}`, 10 + 2*2*5*3},
		{"embeddings: input only", Embeddings, `{"model":"m","input":"hi"}`, 10},
		{"responses max_output_tokens", Responses, `{"model":"m","input":"hi","max_output_tokens":20}`, 10 + 20*3},
	}
	for _, tc := range tests {
		r := mustParse(t, tc.ep, tc.body)
		if got := r.Estimate(estimatePrice, input); got != tc.want {
			t.Errorf("%s: Estimate = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// The clamp: a request may be held for as little as its input plus the endpoint's
// smallest output cap per choice (1 token; 16 on Responses; embeddings cannot be
// lowered), and a smaller hold gets the cap it pays for, or a refusal below that
// smallest cap.
func TestClampFloorAndCapFor(t *testing.T) {
	input := Tokens{Input: 10}
	tests := []struct {
		name      string
		ep        Endpoint
		body      string
		wantFloor money.Micros
		minCap    int64 // the smallest cap CapFor allows; 0: none (never clamped)
	}{
		{"chat", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 10 + 1*3, 1},
		{"chat n=2", ChatCompletions, `{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}`, 10 + 2*1*3, 1},
		{"completions", Completions, `{"model":"m","prompt":"a"}`, 10 + 1*3, 1},
		{"responses: at least 16", Responses, `{"model":"m","input":"hi"}`, 10 + 16*3, 16},
		{"embeddings: the estimate", Embeddings, `{"model":"m","input":"hi"}`, 10, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.ep, tc.body)
			if got := r.ClampFloor(estimatePrice, input); got != tc.wantFloor {
				t.Fatalf("ClampFloor = %d, want %d", got, tc.wantFloor)
			}
			if tc.minCap == 0 {
				if _, ok := r.CapFor(estimatePrice, input, r.Estimate(estimatePrice, input)); ok {
					t.Fatal("CapFor lowers the cap of an endpoint without one")
				}
				return
			}
			choices := max(r.Choices, 1)
			for _, affords := range []int64{tc.minCap - 1, tc.minCap, tc.minCap + 5} {
				budget := estimatePrice.WorstCase(input, affords*choices)
				got, ok := r.CapFor(estimatePrice, input, budget)
				if got != affords || ok != (affords >= tc.minCap) {
					t.Errorf("budget for %d tokens a choice: CapFor = %d, %v; want %d, %v", affords, got, ok, affords, affords >= tc.minCap)
				}
			}
			// The floor itself pays for the smallest cap.
			if got, ok := r.CapFor(estimatePrice, input, tc.wantFloor); got != tc.minCap || !ok {
				t.Errorf("CapFor(floor) = %d, %v; want %d, true", got, ok, tc.minCap)
			}
		})
	}
}
