package proxy

import (
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// Counting prompts only when it matters (README "Counting prompts",
// metering.count_prompts). Counting a prompt exactly costs about 40 µs per 1k
// tokens; its byte bound (metering's Request.InputTokenBound: every token of
// o200k_base and cl100k_base is at least one byte) costs nothing. Admission
// estimates on the bound and reserves on it all or nothing; the prompt is counted
// exactly only when the answer depends on it:
//   - the ledger denies the bound for want of credit or of a limit's room
//     (ReasonInsufficient, ReasonKeyLimit, ReasonSpendLimit): the prompt is counted, and the same hold id reserved again on the exact
//     estimate, with the clamp (a denial holds nothing and records nothing, so
//     one id never has two holds; the extra round trip is paid only by requests
//     the bound would refuse or clamp);
//   - a TPM limit may apply (some tier or the key has one): counted before the
//     rate limit, which stays exact;
//   - at settlement, when the upstream reported no usage (the local count is
//     billed), or claimed more than its output cap alone costs (the bill may be
//     cut to the prompt plus the cap, which needs the prompt's count).
//
// Otherwise the usage event's local prompt count is 0 (not counted), and the
// drift check compares the output alone and flags an upstream prompt above the
// byte bound. Encodings other than o200k_base and cl100k_base are always counted.
// A late count reads the request's texts, which share x.body's memory: the body
// must stay unchanged until the exchange is settled (a pooled body buffer may be
// recycled only after finish).

// promptCount is what an exchange knows of its prompt's count.
type promptCount struct {
	exact bool            // x.input is InputTokens; else it is bound
	bound metering.Tokens // InputTokenBound, when admitted on it
}

// startCount sets x's prompt count — its byte bound, when the encoding has one
// and metering.count_prompts allows, else the exact count — and starts the meter
// that counts the output in tok too (and the prompt, should a bill need it).
func (p *Proxy) startCount(x *exchange, tok metering.Tokenizer, encoding string) {
	if x.settings.CountPromptsAlways || (encoding != metering.O200kBase && encoding != metering.CL100kBase) {
		x.input, x.prompt.exact = x.req.InputTokens(tok), true
		x.meter = metering.NewResponseMeter(x.req, tok, x.input)
		return
	}
	x.input = x.req.InputTokenBound()
	x.prompt.bound = x.input
	x.meter = metering.NewResponseMeter(x.req, tok, x.input)
	x.meter.SetInputBound(x.req)
}

// countExactly counts x's prompt if it has not been (the meter may have, for a
// bill while streaming): x.input and the response's limit then carry the exact
// count. The estimate is admission's to recompute.
func (p *Proxy) countExactly(x *exchange) {
	if x.prompt.exact {
		return
	}
	x.input = x.meter.ExactInput()
	x.prompt.exact = true
	x.limit.Input = x.input
}

// countBeforeRateLimit counts x's prompt exactly when a TPM limit may apply, so
// that TPM counts the prompt as before.
func (p *Proxy) countBeforeRateLimit(x *exchange) {
	if x.prompt.exact || p.opts.RateLimiter == nil || !tpmMayApply(x) {
		return
	}
	p.countExactly(x)
	x.estimate = x.req.Estimate(x.price, x.input)
}

// tpmMayApply reports whether x's key or any tier has a tokens-per-minute limit.
func tpmMayApply(x *exchange) bool {
	if x.key.TPM > 0 {
		return true
	}
	for _, t := range x.settings.Policy.Tiers {
		if t.TPM > 0 {
			return true
		}
	}
	return false
}

// reserveMinimum is the Minimum of x's reserve: on the bound, the whole estimate
// (a clamp must be computed from the exact count); else the clamp floor when
// clamping is on.
func reserveMinimum(x *exchange) money.Micros {
	if x.settings.ClampMaxTokens && x.prompt.exact {
		return x.req.ClampFloor(x.price, x.input)
	}
	return x.estimate
}

// countAfterDenial handles a reserve denied on the bound: for want of credit
// (not for none at all, which no count changes), it counts the prompt exactly
// and reports that reserve should run again, on the exact estimate.
func (p *Proxy) countAfterDenial(x *exchange, res billing.Reservation) bool {
	switch {
	case x.prompt.exact:
		return false
	case res.Reason == billing.ReasonInsufficient, res.Reason == billing.ReasonKeyLimit, res.Reason == billing.ReasonSpendLimit:
		// A limit's room, like the balance's, may pay the exact estimate or its
		// clamp floor where it refused the bound's estimate whole.
	default:
		return false
	}
	p.countExactly(x)
	x.estimate = x.req.Estimate(x.price, x.input)
	return true
}

// settledPrompt makes res, the response's result, carry the prompt count
// settlement needs: exact when the bill depends on it (Limit.NeedsExactInput: no
// upstream usage, or a claim beyond what the output cap alone costs) or the meter
// counted it already, else 0 (not counted).
func (p *Proxy) settledPrompt(x *exchange, res metering.Result) metering.Result {
	if x.prompt.exact {
		return res
	}
	if x.meter.InputCounted() || x.limit.NeedsExactInput(res) {
		p.countExactly(x)
		return x.meter.Result()
	}
	x.input = metering.Tokens{}
	x.meter.SetInput(x.input)
	return x.meter.Result()
}

// drifts reports whether the upstream's usage and the local count of res differ
// beyond the tolerance. A prompt not counted (its local count 0) is compared by
// its byte bound alone: an upstream that claims more prompt tokens than the
// prompt has bytes drifts; the output is compared as always.
func drifts(x *exchange, res metering.Result) bool {
	if res.Source != billing.TokenSourceUpstream {
		return false
	}
	tol := x.settings.DriftTolerance
	if x.prompt.exact {
		return metering.DriftExceeds(res.Tokens, res.Local, tol)
	}
	return res.Tokens.Input > x.prompt.bound.Input ||
		metering.DriftExceeds(metering.Tokens{Output: res.Tokens.Output}, metering.Tokens{Output: res.Local.Output}, tol)
}

// countedPrompt is x's local prompt count for a log line: 0 when it was not
// counted (x.input is then its bound).
func (x *exchange) countedPrompt() int64 {
	if x.prompt.exact {
		return x.input.Input
	}
	return 0
}
