package admin

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/activity"
	"github.com/creditgate/creditgate/money"
)

// fakeActivity is an ActivityReader of function fields.
type fakeActivity struct {
	overview func(ctx context.Context, at time.Time, top int) (activity.Overview, error)
	recent   func(ctx context.Context, limit int) ([]activity.Request, error)
}

func (f fakeActivity) Overview(ctx context.Context, at time.Time, top int) (activity.Overview, error) {
	return f.overview(ctx, at, top)
}
func (f fakeActivity) Recent(ctx context.Context, limit int) ([]activity.Request, error) {
	return f.recent(ctx, limit)
}

func TestOverviewEndpoint(t *testing.T) {
	var gotTop int
	var gotAt time.Time
	s := newTestServer(nil, nil)
	s.Activity = fakeActivity{overview: func(_ context.Context, at time.Time, top int) (activity.Overview, error) {
		gotAt, gotTop = at, top
		return activity.Overview{
			Today:                 activity.Period{Period: "2025-03-01", Spend: money.MustParse("2.5"), Requests: 3},
			Month:                 activity.Period{Period: "2025-03", Spend: money.MustParse("2.5"), Requests: 3},
			Days:                  []activity.Period{{Period: "2025-03-01", Spend: money.MustParse("2.5"), Requests: 3}},
			TopToday:              []activity.AccountSpend{{Account: "acme", Spend: money.MustParse("2.5")}},
			DeniedToday:           map[string]int64{billing.ReasonEmpty: 2},
			RechargeFailuresToday: map[string]int64{"declined": 1},
		}, nil
	}}
	rec := call(t, s.Handler(), "GET", "/admin/v1/overview?top=3", "")
	checkJSON(t, rec, 200, `{"object":"overview","as_of":"2025-03-01T12:00:00Z",
		"today":{"period":"2025-03-01","spend":"2.500000","requests":3},"month":{"period":"2025-03","spend":"2.500000","requests":3},
		"days":[{"period":"2025-03-01","spend":"2.500000","requests":3}],
		"top_today":[{"account":"acme","spend":"2.500000"}],"top_month":[],
		"denied_today":{"empty":2,"expired":0,"insufficient":0},"denied_month":{"empty":0,"expired":0,"insufficient":0},
		"recharge_failures_today":{"declined":1},"recharge_failures_month":{}}`)
	if gotTop != 3 || !gotAt.Equal(testNow) {
		t.Errorf("Overview(at %s, top %d), want %s and 3", gotAt, gotTop, testNow)
	}
	for query, want := range map[string]errorCase{
		"top=0":       {400, TypeInvalidRequest, CodeInvalidValue, "top"},
		"top=51":      {400, TypeInvalidRequest, CodeInvalidValue, "top"},
		"tops=5":      {400, TypeInvalidRequest, CodeInvalidValue, "tops"},
		"top=1&top=2": {400, TypeInvalidRequest, CodeInvalidValue, "top"},
	} {
		checkError(t, call(t, s.Handler(), "GET", "/admin/v1/overview?"+query, ""), want)
	}
	s.Activity = fakeActivity{overview: func(context.Context, time.Time, int) (activity.Overview, error) {
		return activity.Overview{}, billing.ErrUnavailable
	}}
	checkError(t, call(t, s.Handler(), "GET", "/admin/v1/overview", ""), errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""})
	checkError(t, call(t, newTestServer(nil, nil).Handler(), "GET", "/admin/v1/overview", ""), errorCase{501, TypeNotImplemented, CodeActivityDisabled, ""})
	checkError(t, call(t, newTestServer(nil, nil).Handler(), "GET", "/admin/v1/requests", ""), errorCase{501, TypeNotImplemented, CodeActivityDisabled, ""})
}

func TestRecentRequestsEndpoint(t *testing.T) {
	at := testNow.Add(-time.Minute)
	stored := []activity.Request{
		{At: at, Account: "acme", KeyID: "key_1", RequestID: "req_3", Model: "gpt-4o", Outcome: activity.OutcomeSettled, Cost: money.MustParse("0.01"), BalanceAfter: -money.MustParse("0.02")},
		{At: at, Account: "globex", KeyID: "key_9", RequestID: "req_2", Outcome: activity.OutcomeDenied, Reason: billing.ReasonEmpty},
		{At: at, Account: "acme", KeyID: "key_gone", RequestID: "req_1", Outcome: activity.OutcomeSettled},
	}
	var asked int
	keyLists := 0
	keys := &fakeKeys{ListKeysFunc: func(_ context.Context, account string) ([]billing.APIKey, error) {
		keyLists++
		if account == "globex" {
			return nil, errors.New("boom")
		}
		return []billing.APIKey{{ID: "key_1", Name: "prod"}}, nil
	}}
	s := newTestServer(nil, keys)
	s.Activity = fakeActivity{recent: func(_ context.Context, limit int) ([]activity.Request, error) {
		asked = limit
		return stored[:min(limit, len(stored))], nil
	}}
	rec := call(t, s.Handler(), "GET", "/admin/v1/requests?limit=2", "")
	checkJSON(t, rec, 200, `{"object":"list","data":[
		{"at":"2025-03-01T11:59:00Z","account":"acme","key_id":"key_1","key_name":"prod","request_id":"req_3","model":"gpt-4o","outcome":"settled","prompt_tokens":0,"completion_tokens":0,"cost":"0.010000","balance_after":"-0.020000"},
		{"at":"2025-03-01T11:59:00Z","account":"globex","key_id":"key_9","request_id":"req_2","outcome":"denied","reason":"empty","prompt_tokens":0,"completion_tokens":0,"cost":"0.000000","balance_after":"0.000000"}]}`)
	if asked != 2 || keyLists != 2 {
		t.Errorf("read %d, listed keys %d times; want 2 and 2 (one per account)", asked, keyLists)
	}
	rec = call(t, s.Handler(), "GET", "/admin/v1/requests?account=acme", "")
	var list RecentRequestList
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Data) != 2 || list.Data[1].RequestID != "req_1" || list.Data[1].KeyName != "" {
		t.Errorf("acme's requests: %s", rec.Body)
	}
	if asked != activity.DefaultRecentCap {
		t.Errorf("an account's requests read %d of the list, want all %d", asked, activity.DefaultRecentCap)
	}
	for query, want := range map[string]errorCase{
		"limit=201":    {400, TypeInvalidRequest, CodeInvalidValue, "limit"},
		"limit=x":      {400, TypeInvalidRequest, CodeInvalidValue, "limit"},
		"account=a{b}": {400, TypeInvalidRequest, CodeInvalidValue, "account"},
		"model=gpt-4o": {400, TypeInvalidRequest, CodeInvalidValue, "model"},
	} {
		checkError(t, call(t, s.Handler(), "GET", "/admin/v1/requests?"+query, ""), want)
	}
}
