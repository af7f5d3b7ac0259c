package billing

import (
	"context"
	"fmt"
	"time"
)

// Rate limits: requests and tokens per minute, per account (its tier's RPM and
// TPM) and per key (the key's own, when lower than the tier's). They are
// enforced by the store across every instance, one atomic script per request,
// before anything is held (README "Rate limits").
//
// The algorithm is GCRA (the generic cell rate algorithm, as in
// go-redis/redis_rate), kept as a leaky bucket per limit: a limit of N per
// minute holds at most N, a request adds its cost (1 request, or its tokens),
// and the bucket drains continuously at N per minute. A request is admitted
// when its cost still fits. So a full minute's allowance may go at once, and
// then one more fits every 60s/N: over any interval of length W at most
// N + N·W/60s are admitted, and at any one instant at most N.

// Limit types, as OpenAI names them in a rate-limit 429's error type.
const (
	RateLimitRequests = "requests"
	RateLimitTokens   = "tokens"
)

// Rate limit scopes: which limit refused a request.
const (
	RateScopeAccount = "account" // the account's tier
	RateScopeKey     = "key"     // the key's own limit
)

// MaxRateLimit bounds every RPM and TPM (config, key records, the script's
// arguments): the script's arithmetic (a minute's allowance in ms × the limit)
// stays exact in a Lua double below it.
const MaxRateLimit = 100_000_000_000

// RateLimiter enforces rate limits across instances.
type RateLimiter interface {
	// RateLimit counts one request of r.Tokens tokens against the account's
	// tier limits and the key's own, when all of them admit it; when one does
	// not, it counts nothing and says which one and for how long. ErrAccountNotFound
	// when the account is gone.
	RateLimit(ctx context.Context, r RateLimitRequest) (RateLimitResult, error)
}

// RateLimitRequest is one request, as the rate limits count it.
type RateLimitRequest struct {
	Account string
	KeyID   string
	// KeyRPM and KeyTPM are the key's own limits (0: none). A key limit at or
	// above its tier's adds nothing (the account's own limit is lower).
	KeyRPM int64
	KeyTPM int64
	// Tokens is what the request counts against TPM: its prompt plus the most
	// output it allows (metering's Request.RateTokens).
	Tokens int64
	// Tiers are the policy's tiers: the store applies the RPM and TPM of the
	// account's tier as it stands in the store.
	Tiers map[string]Tier
}

// RateWindow is one limit's state after a request, as the x-ratelimit-*
// headers give it.
type RateWindow struct {
	// Limit per minute; 0 when no limit of this type applies.
	Limit int64
	// Remaining is what may still be sent at once.
	Remaining int64
	// Reset is how long until the whole allowance is back (the bucket empty).
	Reset time.Duration
}

// RateLimitResult answers a RateLimitRequest.
type RateLimitResult struct {
	Admitted bool
	// Requests and Tokens are the binding limits of each type (of the account's
	// and the key's, the one with less remaining), after the request when
	// admitted, before it when not.
	Requests RateWindow
	Tokens   RateWindow
	// When refused: the limit's type (RateLimitRequests or RateLimitTokens), its
	// scope (RateScopeAccount or RateScopeKey), the limit, what is in use, what
	// the request asked for, and how long until it would fit (TooLarge: never,
	// the request asks for more than the limit; RetryAfter is then 0).
	Type       string
	Scope      string
	Limit      int64
	Used       int64
	Requested  int64
	RetryAfter time.Duration
	TooLarge   bool
}

// HasLimits reports whether any rate limit may apply to a request with a key
// of these limits: some tier has one, or the key does. Without, a request need
// not ask the store.
func (r RateLimitRequest) HasLimits() bool {
	if r.KeyRPM > 0 || r.KeyTPM > 0 {
		return true
	}
	for _, t := range r.Tiers {
		if t.RPM > 0 || t.TPM > 0 {
			return true
		}
	}
	return false
}

// ValidRateLimit checks an RPM or TPM value: 0 (none) to MaxRateLimit.
func ValidRateLimit(n int64) error {
	if n < 0 || n > MaxRateLimit {
		return fmt.Errorf("%w: a rate limit must be 0 (none) to %d, got %d", ErrInvalid, int64(MaxRateLimit), n)
	}
	return nil
}
