package metering

import "github.com/creditgate/creditgate/money"

// The bound that holds whatever the upstream does (README "Overdraft bound"): a
// response may carry at most the output cap its forwarded request carried, per
// choice, and may be billed at most what its request could cost — the prompt as
// counted locally plus that cap, priced as the estimate prices it, which the hold
// covers by construction. What an upstream claims beyond that (usage it reports, or
// output it sends past the cap) is not charged: Limit.Bill reports it as excess, for
// the operator to dispute with the provider. The stream filter cuts a stream at the
// cap (cut.go); a plain body is relayed as it is but billed within the bound.

// Limit is what one response may carry and cost.
type Limit struct {
	// PerChoice is the output cap per choice the forwarded body carried: the
	// client's, or the one the clamp set, or the model's largest output when the
	// request set none (the upstream's own ceiling, which the estimate assumed).
	// 0 for an endpoint without output (embeddings).
	PerChoice int64
	// Choices is the number of outputs (Request.Choices, at least 1).
	Choices int64
	// Price prices the request; Input is the local count of its prompt.
	Price Price
	Input Tokens
	// Hold is what admission reserved for the request.
	Hold money.Micros
	// noCut leaves streams uncut: their relayed text is not the output the cap
	// bounds (a completions request with echo relays its prompt too).
	noCut bool
}

// Limit returns the limit of r's response when r is forwarded with the output cap
// clampedTo (0: r's own) and held for hold. input is r's local count
// (InputTokens).
func (r *Request) Limit(p Price, input Tokens, clampedTo int64, hold money.Micros) Limit {
	l := Limit{Choices: r.choices(), Price: p, Input: input, Hold: hold, noCut: r.echo}
	if r.spec.unitPrice != nil { // media: the whole output bound, never cut (no stream)
		l.PerChoice, l.Choices = r.outputBound, 1
		return l
	}
	if r.spec.hasOutput() {
		switch {
		case clampedTo > 0:
			l.PerChoice = clampedTo
		case r.MaxOutput > 0:
			l.PerChoice = r.MaxOutput
		default:
			l.PerChoice = p.MaxOutput()
		}
	}
	return l
}

// MaxOutput is the most output the response may carry in all: PerChoice × Choices.
func (l Limit) MaxOutput() int64 {
	return l.PerChoice * max(l.Choices, 1) // both are bounded by ParseRequest: no overflow
}

// MaxCost is the most the response may be billed: its prompt plus MaxOutput tokens
// at the dearest output rate (the estimate's rule), and never more than the hold.
func (l Limit) MaxCost() money.Micros {
	return min(l.Hold, l.Price.WorstCase(l.Input, l.MaxOutput()))
}

// NeedsExactInput reports whether Bill(res) may depend on the exact count of the
// prompt, when l.Input is only an upper bound (Request.InputTokenBound): res is
// billed by the local count (which carries the prompt), or its claim costs more
// than the output cap alone, with no prompt, at the dearest rate — a lower bound
// of MaxCost whatever the prompt, under which Bill returns the claim as it is.
func (l Limit) NeedsExactInput(res Result) bool {
	if res.Source != SourceUpstream {
		return true
	}
	return l.Price.Cost(res.Tokens) > min(l.Hold, l.Price.WorstCase(Tokens{}, l.MaxOutput()))
}

// Bill is what one response is charged, and what its upstream claimed beyond that.
type Bill struct {
	// Tokens are the tokens billed: the claimed ones, or, when those cost more than
	// MaxCost, the claimed ones cut down to fit it (the output to MaxOutput first,
	// then the prompt, only as far as needed).
	Tokens Tokens
	Cost   money.Micros // Price.Cost(Tokens), at most MaxCost
	// Claimed is what the upstream's usage reported; for a local count, the prompt
	// plus all the output the upstream sent (relayed or cut off).
	Claimed Tokens
	// Excess is Price.Cost(Claimed) − Cost; ExcessTokens the claimed tokens (prompt
	// plus output) beyond the billed ones.
	Excess       money.Micros
	ExcessTokens int64
}

// Bill prices res within l: a response never costs more than MaxCost, whatever its
// upstream reports or sends.
func (l Limit) Bill(res Result) Bill {
	claimed := res.Tokens
	if res.Source == SourceLocal {
		claimed.Output += res.Unrelayed
	}
	billed := l.fit(res.Tokens)
	b := Bill{Tokens: billed, Cost: min(l.Price.Cost(billed), l.MaxCost()), Claimed: claimed}
	if c := l.Price.Cost(claimed); c > b.Cost {
		b.Excess = c - b.Cost
	}
	b.ExcessTokens = max(0, total(claimed)-total(billed))
	return b
}

// fit returns t if it costs at most MaxCost, else t cut down until it does: the
// output to MaxOutput (an upstream never writes more than the cap it was sent),
// then the prompt, by the least that fits (the local count may run under the
// provider's; the hold covers what it can), then, should that not do, the output.
func (l Limit) fit(t Tokens) Tokens {
	limit := l.MaxCost()
	if l.Price.Cost(t) <= limit {
		return t
	}
	t = sane(t)
	if out := l.MaxOutput(); t.Output > out {
		t = withOutput(t, out)
		if l.Price.Cost(t) <= limit {
			return t
		}
	}
	t = withInput(t, largest(t.Input, func(n int64) bool { return l.Price.Cost(withInput(t, n)) <= limit }))
	if l.Price.Cost(t) <= limit {
		return t
	}
	return withOutput(t, largest(t.Output, func(n int64) bool { return l.Price.Cost(withOutput(t, n)) <= limit }))
}

// largest is the largest n in [0, hi] for which fits holds, fits being monotone
// (true up to some n, false beyond); 0 if none.
func largest(hi int64, fits func(int64) bool) int64 {
	lo := int64(0)
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// sane clips negative counts to zero and each sub-class to what its class leaves,
// as Price.Cost reads them.
func sane(t Tokens) Tokens {
	t.Input, t.Output = max(t.Input, 0), max(t.Output, 0)
	return withOutput(withInput(t, t.Input), t.Output)
}

// withInput is t with n input tokens, its cached and audio parts clipped to them.
func withInput(t Tokens, n int64) Tokens {
	t.Input = n
	t.CachedInput = min(max(t.CachedInput, 0), n)
	t.AudioInput = min(max(t.AudioInput, 0), n-t.CachedInput)
	return t
}

// withOutput is t with n output tokens, its reasoning and audio parts clipped to
// them.
func withOutput(t Tokens, n int64) Tokens {
	t.Output = n
	t.Reasoning = min(max(t.Reasoning, 0), n)
	t.AudioOutput = min(max(t.AudioOutput, 0), n-t.Reasoning)
	return t
}

func total(t Tokens) int64 { return max(t.Input, 0) + max(t.Output, 0) }
