package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/creditgate/creditgate/billing"
)

var rateLimitScript = newScript("ratelimit.lua")

// rateKey is an account's limiter state; keyRateKey a key's (ratelimit.lua).
func (s *Store) rateKey(id string) string { return s.prefix + "{acct:" + id + "}:rate" }
func (s *Store) keyRateKey(id, keyID string) string {
	return s.prefix + "{acct:" + id + "}:rate:key:" + keyID
}

// RateLimit counts a request against its account's tier limits and its key's
// (billing.RateLimiter), in one script run by the store's clock: one round trip
// for both. A reply lost and resent by go-redis may count the request twice
// (rate limits move no money; the next minute forgets it).
func (s *Store) RateLimit(ctx context.Context, q billing.RateLimitRequest) (billing.RateLimitResult, error) {
	if err := billing.ValidAccountID(q.Account); err != nil {
		return billing.RateLimitResult{}, notFound(q.Account)
	}
	if q.KeyID != "" && billing.ValidAccountID(q.KeyID) != nil {
		return billing.RateLimitResult{}, fmt.Errorf("%w: key id %q", billing.ErrInvalid, q.KeyID)
	}
	if err := billing.ValidRateLimit(q.KeyRPM); err != nil {
		return billing.RateLimitResult{}, err
	}
	if err := billing.ValidRateLimit(q.KeyTPM); err != nil {
		return billing.RateLimitResult{}, err
	}
	// A request larger than any limit can be is refused as larger than its
	// limit, whatever its size: the script's arithmetic stays exact.
	tokens := min(max(q.Tokens, 0), billing.MaxRateLimit+1)
	args := make([]any, 0, 4+3*len(q.Tiers))
	args = append(args, msArg(s.now()), tokens, q.KeyRPM, q.KeyTPM)
	for name, t := range q.Tiers {
		if t.RPM == 0 && t.TPM == 0 {
			continue
		}
		if err := billing.ValidRateLimit(t.RPM); err != nil {
			return billing.RateLimitResult{}, fmt.Errorf("tier %q rpm: %w", name, err)
		}
		if err := billing.ValidRateLimit(t.TPM); err != nil {
			return billing.RateLimitResult{}, fmt.Errorf("tier %q tpm: %w", name, err)
		}
		args = append(args, name, t.RPM, t.TPM)
	}
	keys := []string{s.acctKey(q.Account), s.rateKey(q.Account), s.keyRateKey(q.Account, q.KeyID)}
	r, err := s.run(ctx, rateLimitScript, keys, args...)
	if err != nil {
		return billing.RateLimitResult{}, err
	}
	return decodeRateLimit(r, q.Account)
}

// decodeRateLimit reads ratelimit.lua's reply.
func decodeRateLimit(r reply, account string) (billing.RateLimitResult, error) {
	switch r.status() {
	case "OK":
		res := billing.RateLimitResult{Admitted: true}
		res.Requests, res.Tokens = rateWindow(&r, 1), rateWindow(&r, 4)
		return decoded(&r, 7, res)
	case "LIMITED":
		res := billing.RateLimitResult{Type: r.str(1), Scope: r.str(2), Limit: r.int(3, "a limit"),
			Used: r.int(4, "a count"), Requested: r.int(5, "a count")}
		switch res.Type {
		case billing.RateLimitRequests, billing.RateLimitTokens:
		default:
			r.fail("element 1 is %s, want a limit type", show(res.Type))
		}
		switch res.Scope {
		case billing.RateScopeAccount, billing.RateScopeKey:
		default:
			r.fail("element 2 is %s, want a scope", show(res.Scope))
		}
		switch retry := r.int(6, "a delay (ms, or -1)"); {
		case retry == -1:
			res.TooLarge = true
		case retry > 0:
			res.RetryAfter = time.Duration(retry) * time.Millisecond
		default:
			r.fail("element 6 is %d, want a delay (ms > 0, or -1)", retry)
		}
		if res.Limit <= 0 || res.Used < 0 || res.Requested < 0 {
			r.fail("limit %d, used %d, requested %d", res.Limit, res.Used, res.Requested)
		}
		res.Requests, res.Tokens = rateWindow(&r, 7), rateWindow(&r, 10)
		return decoded(&r, 13, res)
	case "NOACCOUNT":
		return billing.RateLimitResult{}, r.refusal(1, notFound(account))
	}
	return billing.RateLimitResult{}, r.unexpected()
}

// rateWindow reads a limit, remaining, reset_ms triple from element i.
func rateWindow(r *reply, i int) billing.RateWindow {
	w := billing.RateWindow{Limit: r.int(i, "a limit"), Remaining: r.int(i+1, "a count"),
		Reset: time.Duration(r.int(i+2, "a delay (ms)")) * time.Millisecond}
	if w.Limit < 0 || w.Remaining < 0 || w.Remaining > w.Limit || w.Reset < 0 || w.Reset > time.Minute {
		r.fail("elements %d-%d are %d %d %s, want a limit, what remains of it and a reset within a minute", i, i+2, w.Limit, w.Remaining, w.Reset)
	}
	return w
}
