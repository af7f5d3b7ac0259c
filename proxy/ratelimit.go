package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
)

// Rate limits (README "Rate limits"): admission's rateLimit rule counts the
// request against its account's tier RPM/TPM and its key's, in the store across
// instances, before anything is held. Every response of a request that got that
// far carries OpenAI's six x-ratelimit-* headers for each type of limit that
// applies (none when no limit applies); one over a limit gets OpenAI's 429.

// ReasonRateLimit is the X-Creditgate-Reason of a rate-limit 429.
const ReasonRateLimit = "rate_limit"

// rateLimit counts the request against its rate limits: prompt plus the most
// output it allows for TPM (metering's RateTokens), never corrected after the
// answer. Without a RateLimiter, or with no limit in any tier nor on the key, it
// asks nothing.
func (p *Proxy) rateLimit(x *exchange) *apiError {
	if p.opts.RateLimiter == nil {
		return nil
	}
	p.countBeforeRateLimit(x) // TPM counts the exact prompt
	return p.rateLimitTokens(x, x.req.RateTokens(x.price, x.input))
}

// rateLimitTokens counts x against the rate limits as tokens tokens.
func (p *Proxy) rateLimitTokens(x *exchange, tokens int64) *apiError {
	if p.opts.RateLimiter == nil {
		return nil
	}
	q := billing.RateLimitRequest{Account: x.key.Account, KeyID: x.key.ID, KeyRPM: x.key.RPM, KeyTPM: x.key.TPM,
		Tokens: tokens, Tiers: x.settings.Policy.Tiers}
	if !q.HasLimits() {
		return nil
	}
	res, err := p.opts.RateLimiter.RateLimit(x.in.Context(), q)
	if err != nil {
		if errors.Is(err, billing.ErrAccountNotFound) {
			p.forgetKey(x.in) // the key outlived its account
		}
		return p.storeError(err, "rate limit failed", zap.String("request_id", x.id))
	}
	setRateHeaders(x.w.Header(), res)
	if !res.Admitted {
		return errRateLimited(x.model, x.key, res)
	}
	return nil
}

// setRateHeaders sets the x-ratelimit-* headers of each type that has a limit.
func setRateHeaders(h http.Header, res billing.RateLimitResult) {
	for _, w := range []struct {
		suffix string
		win    billing.RateWindow
	}{{"requests", res.Requests}, {"tokens", res.Tokens}} {
		if w.win.Limit == 0 {
			continue
		}
		h.Set("X-Ratelimit-Limit-"+w.suffix, strconv.FormatInt(w.win.Limit, 10))
		h.Set("X-Ratelimit-Remaining-"+w.suffix, strconv.FormatInt(w.win.Remaining, 10))
		h.Set("X-Ratelimit-Reset-"+w.suffix, resetString(w.win.Reset))
	}
}

// resetString formats a delay as OpenAI does in x-ratelimit-reset-* and in its
// messages: Go's duration format to the millisecond ("12ms", "1.2s", "6m0s").
func resetString(d time.Duration) string {
	return d.Round(time.Millisecond).String()
}

// errRateLimited is OpenAI's 429 for a rate limit: "Rate limit reached for
// <model> in organization <account> on requests per min (RPM): Limit N, Used N,
// Requested 1. Please try again in 20s." (a key's own limit says "for key
// <key_id>" after the organization), with retry-after and retry-after-ms; for a
// request larger than its limit, OpenAI's "Request too large" and no retry
// (x-should-retry: false: it can never pass).
func errRateLimited(model string, key billing.APIKey, res billing.RateLimitResult) *apiError {
	per := "requests per min (RPM)"
	if res.Type == billing.RateLimitTokens {
		per = "tokens per min (TPM)"
	}
	where := "in organization " + key.Account
	if res.Scope == billing.RateScopeKey {
		where += " for key " + key.ID
	}
	e := &apiError{status: http.StatusTooManyRequests, typ: res.Type, code: "rate_limit_exceeded", reason: ReasonRateLimit, rateLimited: res.Type}
	if res.TooLarge {
		e.message = fmt.Sprintf("Request too large for %s %s on %s: Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully.",
			model, where, per, res.Limit, res.Requested)
		e.noRetry = true
		return e
	}
	e.message = fmt.Sprintf("Rate limit reached for %s %s on %s: Limit %d, Used %d, Requested %d. Please try again in %s.",
		model, where, per, res.Limit, res.Used, res.Requested, resetString(res.RetryAfter))
	e.retryAfter = res.RetryAfter
	return e
}

// writeRetryAfter sets retry-after (whole seconds, rounded up) and
// retry-after-ms, which the official SDKs prefer.
func writeRetryAfter(h http.Header, d time.Duration) {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	h.Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	h.Set("Retry-After-Ms", strconv.FormatInt(int64(ms), 10))
}

// isUpstreamRateHeader matches the upstream's own x-ratelimit-* headers, which
// describe the operator's upstream account: never relayed.
func isUpstreamRateHeader(name string) bool {
	return strings.HasPrefix(name, "X-Ratelimit-")
}
