package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Codes of the limit 429s (README "Key limits and spend limits"): quota 429s
// like insufficient_quota (same type, x-should-retry: false, no retry-after),
// each with its own code and X-Creditgate-Reason.
const (
	codeKeyLimitExceeded   = "key_limit_exceeded"
	codeSpendLimitExceeded = "spend_limit_exceeded"
)

// withLimits adds the key's limit and the tiers' monthly usage limits to a
// reservation, which the ledger checks with the balance in one script.
func withLimits(q billing.ReserveRequest, key billing.APIKey, pol billing.Policy) billing.ReserveRequest {
	q.KeyLimit, q.KeyLimitReset = key.Limit, key.LimitReset
	q.TierUsageLimits = pol.TierUsageLimits()
	return q
}

// errDenied is the 429 for a refused reservation: a limit's own, or the
// balance's insufficient_quota.
func errDenied(reason string, key billing.APIKey, now time.Time) *apiError {
	switch reason {
	case billing.ReasonKeyLimit:
		msg := fmt.Sprintf("This API key reached its spend limit of $%s.", key.Limit.Shortest(money.USD))
		if next := billing.PeriodsOf(now).Next(key.LimitReset); !next.IsZero() {
			msg = fmt.Sprintf("This API key reached its %s spend limit of $%s; it resets at %s.", key.LimitReset, key.Limit.Shortest(money.USD), next.Format(time.RFC3339))
		}
		return &apiError{status: http.StatusTooManyRequests, typ: typeInsufficientQuota, code: codeKeyLimitExceeded,
			message: msg, reason: reason, noRetry: true}
	case billing.ReasonSpendLimit:
		next := billing.PeriodsOf(now).Next(billing.LimitMonthly)
		return &apiError{status: http.StatusTooManyRequests, typ: typeInsufficientQuota, code: codeSpendLimitExceeded,
			message: fmt.Sprintf("This account reached its monthly spend limit; it resets at %s.", next.Format(time.RFC3339)),
			reason:  reason, noRetry: true}
	}
	return errQuotaExceeded(reason)
}

// keyResponse is GET /v1/key: the calling key, its limit and what it spent.
type keyResponse struct {
	ID             string        `json:"id"`
	Name           string        `json:"name"`
	Limit          *money.Micros `json:"limit"`           // null: none
	LimitRemaining *money.Micros `json:"limit_remaining"` // null: no limit
	LimitReset     string        `json:"limit_reset"`
	Usage          keyUsageJSON  `json:"usage"`
	ExpiresAt      *time.Time    `json:"expires_at"` // null: never
	Models         []string      `json:"models"`
	RPM            int64         `json:"rpm"`
	TPM            int64         `json:"tpm"`
}

type keyUsageJSON struct {
	Daily   money.Micros `json:"daily"`
	Weekly  money.Micros `json:"weekly"`
	Monthly money.Micros `json:"monthly"`
	Total   money.Micros `json:"total"`
}

// serveKey answers GET /v1/key for the calling app key. limit_remaining is the
// limit less what the key spent in the current period (not less its requests in
// flight), at least 0.
func (p *Proxy) serveKey(w http.ResponseWriter, r *http.Request) {
	key, _, aerr := p.authenticate(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	noteCaller(w, key)
	var u billing.KeyUsage
	if p.opts.KeyUsage != nil {
		var err error
		if u, err = p.opts.KeyUsage.KeyUsage(r.Context(), key.Account, key.ID, p.opts.Now()); err != nil {
			writeError(w, p.storeError(err, "key usage lookup failed", zap.String("path", r.URL.Path)))
			return
		}
	}
	reset := key.LimitReset
	if reset == "" {
		reset = billing.LimitNever
	}
	out := keyResponse{ID: key.ID, Name: key.Name, LimitReset: reset, Models: key.Models, RPM: key.RPM, TPM: key.TPM,
		Usage: keyUsageJSON{Daily: u.Daily, Weekly: u.Weekly, Monthly: u.Monthly, Total: u.Total}}
	if out.Models == nil {
		out.Models = []string{}
	}
	if key.Limit > 0 {
		limit, left := key.Limit, max(0, key.Limit-u.Spent(reset))
		out.Limit, out.LimitRemaining = &limit, &left
	}
	if !key.ExpiresAt.IsZero() {
		at := key.ExpiresAt.UTC()
		out.ExpiresAt = &at
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
