package admin

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/activity"
	"github.com/creditgate/creditgate/money"
)

// The view across accounts: GET /admin/v1/overview and GET
// /admin/v1/requests read the console's aggregate (billing/activity), a
// fixed number of Redis commands whatever the number of accounts. Its figures
// are written after each settlement, off the request path and not atomically
// with the ledger: a dashboard's, not the ledger's (see billing/activity).

// Limits of the view across accounts.
const (
	DefaultOverviewTop   = 10
	DefaultRecentLimit   = 50
	MaxRecentLimit       = 200
	CodeActivityDisabled = "activity_unavailable"
)

// ActivityReader reads the aggregate across accounts (*activity.Reader).
type ActivityReader interface {
	Overview(ctx context.Context, at time.Time, top int) (activity.Overview, error)
	Recent(ctx context.Context, limit int) ([]activity.Request, error)
}

// Period is spend and requests over a day or a month (UTC).
type Period struct {
	Period   string       `json:"period"` // "2026-03-10" or "2026-03"
	Spend    money.Micros `json:"spend"`
	Requests int64        `json:"requests"`
}

// AccountSpend is one account's spend over a period.
type AccountSpend struct {
	Account string       `json:"account"`
	Spend   money.Micros `json:"spend"`
}

// Overview is the answer of GET /admin/v1/overview.
type Overview struct {
	Object string    `json:"object"` // "overview"
	AsOf   time.Time `json:"as_of"`
	Today  Period    `json:"today"`
	Month  Period    `json:"month"`
	// Days are the last 30 days (UTC), oldest first.
	Days     []Period       `json:"days"`
	TopToday []AccountSpend `json:"top_today"`
	TopMonth []AccountSpend `json:"top_month"`
	// Denied* are creditgate's 429 insufficient_quota by reason (empty,
	// expired, insufficient), each present.
	DeniedToday map[string]int64 `json:"denied_today"`
	DeniedMonth map[string]int64 `json:"denied_month"`
	// RechargeFailures* are auto-recharges that did not pay, by result.
	RechargeFailuresToday map[string]int64 `json:"recharge_failures_today"`
	RechargeFailuresMonth map[string]int64 `json:"recharge_failures_month"`
}

// RecentRequest is one request of GET /admin/v1/requests.
type RecentRequest struct {
	At        time.Time `json:"at"`
	Account   string    `json:"account"`
	KeyID     string    `json:"key_id,omitempty"`
	KeyName   string    `json:"key_name,omitempty"` // the key's name, when it still exists
	RequestID string    `json:"request_id,omitempty"`
	Model     string    `json:"model,omitempty"`
	Endpoint  string    `json:"endpoint,omitempty"`
	// Outcome is "settled" (cost charged) or "denied" (a 429; reason says why).
	Outcome          string       `json:"outcome"`
	Reason           string       `json:"reason,omitempty"`
	PromptTokens     int64        `json:"prompt_tokens"`
	CompletionTokens int64        `json:"completion_tokens"`
	Cost             money.Micros `json:"cost"`
	// BalanceAfter is the balance after a settlement, or what was available
	// when a request was denied.
	BalanceAfter SignedMicros `json:"balance_after"`
}

// RecentRequestList is the answer of GET /admin/v1/requests, newest first.
type RecentRequestList struct {
	Object string          `json:"object"` // "list"
	Data   []RecentRequest `json:"data"`
}

func (s *Server) activityReader() (ActivityReader, *apiError) {
	if s.Activity == nil {
		return nil, &apiError{status: http.StatusNotImplemented, typ: TypeNotImplemented, code: CodeActivityDisabled,
			message: "this server keeps no aggregate across accounts"}
	}
	return s.Activity, nil
}

// intParam reads an optional integer query parameter within [1, max].
func intParam(q url.Values, name string, def, max int) (int, *apiError) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, badRequest(CodeInvalidValue, name, "%s must be an integer from 1 to %d, not %q", name, max, v)
	}
	return n, nil
}

// onlyParams refuses query parameters other than allowed.
func onlyParams(q url.Values, allowed ...string) *apiError {
	for name, values := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || name == a
		}
		if !ok {
			return badRequest(CodeInvalidValue, name, "unknown query parameter %q", name)
		}
		if len(values) != 1 {
			return badRequest(CodeInvalidValue, name, "query parameter %s is given %d times", name, len(values))
		}
	}
	return nil
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) *apiError {
	q := r.URL.Query()
	if e := onlyParams(q, "top"); e != nil {
		return e
	}
	top, e := intParam(q, "top", DefaultOverviewTop, activity.MaxTop)
	if e != nil {
		return e
	}
	rd, e := s.activityReader()
	if e != nil {
		return e
	}
	at := s.now().UTC()
	o, err := rd.Overview(r.Context(), at, top)
	if err != nil {
		return storeError(err)
	}
	out := Overview{Object: "overview", AsOf: at, Today: Period(o.Today), Month: Period(o.Month),
		Days: make([]Period, 0, len(o.Days)), TopToday: spends(o.TopToday), TopMonth: spends(o.TopMonth),
		DeniedToday: withReasons(o.DeniedToday), DeniedMonth: withReasons(o.DeniedMonth),
		RechargeFailuresToday: nonNil(o.RechargeFailuresToday), RechargeFailuresMonth: nonNil(o.RechargeFailuresMonth)}
	for _, d := range o.Days {
		out.Days = append(out.Days, Period(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func spends(in []activity.AccountSpend) []AccountSpend {
	out := make([]AccountSpend, 0, len(in))
	for _, a := range in {
		out = append(out, AccountSpend(a))
	}
	return out
}

// withReasons has every 429 reason, at 0 when none happened.
func withReasons(m map[string]int64) map[string]int64 {
	out := nonNil(m)
	for _, r := range []string{billing.ReasonEmpty, billing.ReasonExpired, billing.ReasonInsufficient} {
		out[r] += 0
	}
	return out
}

func nonNil(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// recentRequests answers the newest requests across accounts, optionally of
// one account (filtered from the capped list, so at most its length is read),
// with the names of their keys.
func (s *Server) recentRequests(w http.ResponseWriter, r *http.Request) *apiError {
	q := r.URL.Query()
	if e := onlyParams(q, "limit", "account"); e != nil {
		return e
	}
	limit, e := intParam(q, "limit", DefaultRecentLimit, MaxRecentLimit)
	if e != nil {
		return e
	}
	account := q.Get("account")
	if account != "" {
		if e := checkAccountID(account); e != nil {
			e.param = "account"
			return e
		}
	}
	rd, e := s.activityReader()
	if e != nil {
		return e
	}
	read := limit
	if account != "" {
		read = activity.DefaultRecentCap
	}
	reqs, err := rd.Recent(r.Context(), read)
	if err != nil {
		return storeError(err)
	}
	out := RecentRequestList{Object: "list", Data: make([]RecentRequest, 0, limit)}
	for _, x := range reqs {
		if account != "" && x.Account != account {
			continue
		}
		out.Data = append(out.Data, RecentRequest{At: x.At, Account: x.Account, KeyID: x.KeyID, RequestID: x.RequestID,
			Model: x.Model, Endpoint: x.Endpoint, Outcome: x.Outcome, Reason: x.Reason, PromptTokens: x.PromptTokens,
			CompletionTokens: x.CompletionTokens, Cost: x.Cost, BalanceAfter: SignedMicros(x.BalanceAfter)})
		if len(out.Data) == limit {
			break
		}
	}
	s.nameKeys(r.Context(), out.Data)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// nameKeys fills in key names: one key listing per account on the page. A
// listing that fails leaves that account's names out (the ids stay).
func (s *Server) nameKeys(ctx context.Context, reqs []RecentRequest) {
	if s.Keys == nil {
		return
	}
	names := map[string]map[string]string{}
	for i := range reqs {
		acct := reqs[i].Account
		byID, ok := names[acct]
		if !ok {
			byID = map[string]string{}
			if keys, err := s.Keys.ListKeys(ctx, acct); err == nil {
				for _, k := range keys {
					byID[k.ID] = k.Name
				}
			}
			names[acct] = byID
		}
		reqs[i].KeyName = byID[reqs[i].KeyID]
	}
}
