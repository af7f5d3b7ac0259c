// Package activity keeps a small aggregate across accounts in Redis for the
// operator's console: spend and requests per day and per month (UTC), the
// accounts that spent most today and this month, the 429s by reason, the
// auto-recharges that failed, and a capped list of the latest requests. The
// ledger keeps per-account state, and a view across accounts would otherwise
// need a scan of every account. The Recorder is told about each settlement
// and refusal after the ledger answered and writes them in batches, one
// pipeline per flush, off the request path; the aggregate is therefore not
// atomic with the ledger's scripts: a crash loses at most the last flush
// interval, a full queue drops events (counted), and settlements replayed from
// the spool are not counted. It is a dashboard's figures, not the ledger's:
// the ledger, its reports and the audit stay the record.
//
// Every key carries the hash tag {activity} after the store's prefix, so a
// flush is one round trip to one node on a Redis Cluster (that node takes all
// of it: a write per flush, not per request). Keys expire on their own:
// daily ones after 35 days, monthly ones after 400 days, the top-accounts
// sorted sets (one member per account that spent) after 3 days (daily) and 62
// days (monthly).
package activity

import (
	"encoding/json"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Key lifetimes.
const (
	dayTTL      = 35 * 24 * time.Hour
	monthTTL    = 400 * 24 * time.Hour
	topDayTTL   = 3 * 24 * time.Hour
	topMonthTTL = 62 * 24 * time.Hour
)

// DefaultRecentCap is how many requests the recent list keeps.
const DefaultRecentCap = 1000

// Request is one entry of the recent-requests list: a settled request or a
// refusal, without prompts or keys' secrets.
type Request struct {
	At        time.Time
	Account   string
	KeyID     string
	RequestID string
	Model     string
	Endpoint  string
	// Outcome is OutcomeSettled (Cost charged) or OutcomeDenied (the 429's
	// Reason: billing.ReasonEmpty, ReasonExpired or ReasonInsufficient).
	Outcome          string
	Reason           string
	PromptTokens     int64
	CompletionTokens int64
	Cost             money.Micros
	BalanceAfter     money.Micros
}

// Outcomes of a Request.
const (
	OutcomeSettled = "settled"
	OutcomeDenied  = "denied"
)

// storedRequest is a Request as the list stores it (JSON, short keys).
type storedRequest struct {
	At       int64  `json:"t"` // Unix ms
	Account  string `json:"a"`
	Key      string `json:"k,omitempty"`
	ID       string `json:"id,omitempty"`
	Model    string `json:"m,omitempty"`
	Endpoint string `json:"e,omitempty"`
	Outcome  string `json:"o"`
	Reason   string `json:"r,omitempty"`
	In       int64  `json:"in,omitempty"`
	Out      int64  `json:"out,omitempty"`
	Cost     int64  `json:"c,omitempty"`
	Balance  int64  `json:"b"`
}

func encodeRequest(r Request) string {
	b, _ := json.Marshal(storedRequest{At: r.At.UnixMilli(), Account: r.Account, Key: r.KeyID, ID: r.RequestID, Model: r.Model,
		Endpoint: r.Endpoint, Outcome: r.Outcome, Reason: r.Reason, In: r.PromptTokens, Out: r.CompletionTokens,
		Cost: int64(r.Cost), Balance: int64(r.BalanceAfter)})
	return string(b)
}

func decodeRequest(s string) (Request, bool) {
	var v storedRequest
	if json.Unmarshal([]byte(s), &v) != nil || v.Account == "" {
		return Request{}, false
	}
	return Request{At: time.UnixMilli(v.At).UTC(), Account: v.Account, KeyID: v.Key, RequestID: v.ID, Model: v.Model,
		Endpoint: v.Endpoint, Outcome: v.Outcome, Reason: v.Reason, PromptTokens: v.In, CompletionTokens: v.Out,
		Cost: money.Micros(v.Cost), BalanceAfter: money.Micros(v.Balance)}, true
}

// keys names the aggregate's keys under a prefix.
type keys struct{ prefix string }

func (k keys) base() string                { return k.prefix + "{activity}:" }
func day(t time.Time) string               { return t.UTC().Format("2006-01-02") }
func month(t time.Time) string             { return t.UTC().Format("2006-01") }
func (k keys) spend(period string) string  { return k.base() + "spend:" + period }
func (k keys) count(period string) string  { return k.base() + "requests:" + period }
func (k keys) top(period string) string    { return k.base() + "top:" + period }
func (k keys) denied(period string) string { return k.base() + "denied:" + period }
func (k keys) recharge(period string) string {
	return k.base() + "recharge_failed:" + period
}
func (k keys) recent() string { return k.base() + "recent" }
