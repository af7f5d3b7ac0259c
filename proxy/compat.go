package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/creditgate/creditgate/money"
)

// The OpenAI billing endpoints that chat front ends (ChatGPT-Next-Web, LobeChat,
// balance checkers) query with the API key, answered for the key's account in the
// shapes they read. OpenAI's own endpoints carried USD as JSON numbers, so these
// do too, converted exactly from micro-USD (the decimal text of the amount, never a
// float).
//
// The figures fit together the way clients combine them (one-api does the same):
// usage is lifetime usage and the "limit" is everything the account could ever
// spend, so that
//
//	hard_limit_usd − total_usage/100 = total_available = balance (credit − debt)
//
// which is what a client that shows "used X of Y" or computes a remaining balance
// needs. Expired credit counts in neither. start_date and end_date of the usage
// endpoint are accepted and ignored.

// compatPaths are the OpenAI-compatible billing endpoints that chat front ends query
// with the app key.
var compatPaths = map[string]bool{
	"/dashboard/billing/credit_grants":    true,
	"/v1/dashboard/billing/credit_grants": true,
	"/dashboard/billing/subscription":     true,
	"/v1/dashboard/billing/subscription":  true,
	"/dashboard/billing/usage":            true,
	"/v1/dashboard/billing/usage":         true,
}

// creditSummary is GET /dashboard/billing/credit_grants, as OpenAI answered it.
type creditSummary struct {
	Object         string      `json:"object"` // "credit_summary"
	TotalGranted   json.Number `json:"total_granted"`
	TotalUsed      json.Number `json:"total_used"`
	TotalAvailable json.Number `json:"total_available"`
	Grants         grantList   `json:"grants"`
}

type grantList struct {
	Object string        `json:"object"` // "list"
	Data   []creditGrant `json:"data"`
}

type creditGrant struct {
	Object      string      `json:"object"` // "credit_grant"
	ID          string      `json:"id"`
	GrantAmount json.Number `json:"grant_amount"`
	UsedAmount  json.Number `json:"used_amount"`
	EffectiveAt int64       `json:"effective_at"` // Unix seconds
	ExpiresAt   int64       `json:"expires_at"`
}

// billingSubscription is GET /v1/dashboard/billing/subscription.
type billingSubscription struct {
	Object             string      `json:"object"` // "billing_subscription"
	HasPaymentMethod   bool        `json:"has_payment_method"`
	Canceled           bool        `json:"canceled"`
	CanceledAt         *int64      `json:"canceled_at"`
	Delinquent         *bool       `json:"delinquent"`
	AccessUntil        int64       `json:"access_until"` // Unix seconds: the last live grant's expiry, 0 when none
	SoftLimitUSD       json.Number `json:"soft_limit_usd"`
	HardLimitUSD       json.Number `json:"hard_limit_usd"`
	SystemHardLimitUSD json.Number `json:"system_hard_limit_usd"`
	Plan               plan        `json:"plan"`
	AccountName        string      `json:"account_name"`
}

type plan struct {
	Title string `json:"title"`
	ID    string `json:"id"`
}

// billingUsage is GET /v1/dashboard/billing/usage: total_usage is in US cents.
type billingUsage struct {
	Object     string      `json:"object"` // "list"
	TotalUsage json.Number `json:"total_usage"`
}

// serveBillingCompat answers the OpenAI-compatible billing endpoints.
func (p *Proxy) serveBillingCompat(w http.ResponseWriter, r *http.Request) {
	a, ok := p.callerAccount(w, r)
	if !ok {
		return
	}
	now := p.opts.Now()
	// Everything the account could ever spend: used + what is left.
	limit := a.Totals.Granted - a.Totals.Expired - a.Totals.AdjustedOut
	var out any
	switch strings.TrimPrefix(r.URL.Path, "/v1") {
	case "/dashboard/billing/credit_grants":
		s := creditSummary{
			Object: "credit_summary", TotalGranted: usdNumber(limit), TotalUsed: usdNumber(a.Totals.Usage),
			TotalAvailable: usdNumber(a.Balance()), Grants: grantList{Object: "list", Data: []creditGrant{}},
		}
		for _, g := range a.Grants {
			if g.ExpiresAt.After(now) {
				s.Grants.Data = append(s.Grants.Data, creditGrant{Object: "credit_grant", ID: g.ID, GrantAmount: usdNumber(g.Amount),
					UsedAmount: usdNumber(g.Amount - g.Remaining), EffectiveAt: g.GrantedAt.Unix(), ExpiresAt: g.ExpiresAt.Unix()})
			}
		}
		out = s
	case "/dashboard/billing/subscription":
		var until time.Time
		for _, g := range a.Grants {
			if g.Remaining > 0 && g.ExpiresAt.After(until) {
				until = g.ExpiresAt
			}
		}
		s := billingSubscription{
			Object: "billing_subscription", HasPaymentMethod: a.AutoRecharge.Enabled,
			SoftLimitUSD: usdNumber(limit), HardLimitUSD: usdNumber(limit), SystemHardLimitUSD: usdNumber(limit),
			Plan: plan{Title: a.Tier, ID: a.Tier}, AccountName: a.ID,
		}
		if !until.IsZero() {
			s.AccessUntil = until.Unix()
		}
		out = s
	default: // usage
		out = billingUsage{Object: "list", TotalUsage: centsNumber(a.Totals.Usage)}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// usdNumber is m in USD as an exact JSON number: "4.998731", "10", "-0.3".
func usdNumber(m money.Micros) json.Number { return json.Number(m.Shortest(money.USD)) }

// centsNumber is m in US cents as an exact JSON number: 1 micro-USD is 0.0001 cent.
func centsNumber(m money.Micros) json.Number { return json.Number(m.Shortest(money.Cents)) }
