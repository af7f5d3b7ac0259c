package metering

import (
	"math"

	"github.com/creditgate/creditgate/money"
)

// The estimate and the clamp (README "How requests are metered and billed", steps 3
// and 4): what a request may cost at worst, which the proxy holds before forwarding
// it, and, when the account pays for less, how far its output cap may be lowered to
// fit a smaller hold. The ledger decides what is held (available plus grace, down to
// ClampFloor); this file decides what that pays for.

// WorstCase prices input plus output tokens whose class is not known yet, each at the
// dearest output rate (reasoning or audio output may cost more than text).
func (p Price) WorstCase(input Tokens, output int64) money.Micros {
	rate := max(p.Output, p.Reasoning, p.AudioOutput)
	p.Output, p.Reasoning, p.AudioOutput = rate, rate, rate
	t := input
	t.Output = output
	return p.Cost(t)
}

// Estimate is r's worst-case cost E: its input plus the most output it allows, at
// WorstCase. The most output is the output cap per choice (the client's, or the
// model's largest output when it set none) times the choices; an endpoint without
// output (embeddings) adds none. input is r's local count (InputTokens).
func (r *Request) Estimate(p Price, input Tokens) money.Micros {
	return p.WorstCase(input, r.mostOutput(p))
}

// mostOutput is the most output r allows: its output cap per choice (the
// client's, or the model's largest output when it set none) times the choices;
// 0 for an endpoint without output.
func (r *Request) mostOutput(p Price) int64 {
	if r.spec.unitPrice != nil {
		return r.outputBound // the media endpoints' own bound (media.go)
	}
	if !r.spec.hasOutput() {
		return 0
	}
	perChoice := r.MaxOutput
	if perChoice <= 0 {
		perChoice = p.MaxOutput()
	}
	return perChoice * r.choices()
}

// RateTokens is what r counts against a tokens-per-minute limit, as OpenAI
// counts it before the answer is known: its prompt (input, r's local count)
// plus the most output it allows (the output cap as the client sent it, or the
// model's largest output; a clamp the balance imposes later does not lower it).
func (r *Request) RateTokens(p Price, input Tokens) int64 {
	return input.Input + r.mostOutput(p)
}

// ClampFloor is the least r may be held for with its output cap lowered: its input
// plus the endpoint's smallest output cap per choice. A request without an output
// cap cannot be lowered, so its floor is its estimate.
func (r *Request) ClampFloor(p Price, input Tokens) money.Micros {
	estimate := r.Estimate(p, input)
	if !r.spec.hasOutput() {
		return estimate
	}
	return min(estimate, p.WorstCase(input, r.spec.minCap*r.choices()))
}

// CapFor returns the output cap per choice that budget pays for (a hold smaller than
// the estimate). ok is false when that cap is below the smallest the endpoint
// accepts (16 on Responses): the request must then be refused, not sent with a cap
// the upstream rejects.
func (r *Request) CapFor(p Price, input Tokens, budget money.Micros) (maxOutput int64, ok bool) {
	n := p.MaxOutputFor(input, r.choices(), budget)
	return n, r.spec.hasOutput() && n >= r.spec.minCap
}

// choices is r.Choices, at least 1.
func (r *Request) choices() int64 { return max(r.Choices, 1) }

// MaxOutputFor returns the largest number of output tokens n such that a request
// with the given input tokens and n output tokens in each of `choices` choices
// costs at most budget at WorstCase, up to the model's largest output. It returns 0
// when even the input alone does not fit.
func (p Price) MaxOutputFor(input Tokens, choices int64, budget money.Micros) int64 {
	if choices < 1 {
		choices = 1
	}
	if p.Cost(input) > budget {
		return 0
	}
	if max(p.Output, p.Reasoning, p.AudioOutput) <= 0 {
		return p.MaxOutput()
	}
	// Binary search: the cost is monotone in the output count.
	lo, hi := int64(0), p.MaxOutput()
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		out := mid * choices
		if mid > math.MaxInt64/choices { // the product would wrap negative and look free
			out = math.MaxInt64
		}
		if p.WorstCase(input, out) <= budget {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
