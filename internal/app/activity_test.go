package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// TestOverviewAcrossAccounts: requests through the proxy reach the console's
// aggregate after their settlement: today's spend is what the ledgers booked,
// the top accounts rank by it, the 429 is counted by reason, and the recent
// requests carry the keys' names.
func TestOverviewAcrossAccounts(t *testing.T) {
	a, _ := start(t, "")
	ctx := context.Background()
	c := &client.Client{BaseURL: "http://" + a.AdminAddr().String(), Token: adminToken}
	data := "http://" + a.DataAddr().String()
	keys := map[string]string{}
	for _, id := range []string{"big", "small"} {
		if _, err := c.CreateAccount(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddCredits(ctx, id, "5.00", nil, ""); err != nil {
			t.Fatal(err)
		}
		k, err := c.CreateKey(ctx, id, id+"-app")
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = k.Key
	}
	call := func(account string) int {
		req, _ := http.NewRequest(http.MethodPost, data+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4","max_tokens":1000,"messages":[{"role":"user","content":"Hello!"}]}`))
		req.Header.Set("Authorization", "Bearer "+keys[account])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for range 3 {
		if s := call("small"); s != 200 {
			t.Fatalf("small: %d", s)
		}
	}
	for i := 0; ; i++ {
		if i > 500 {
			t.Fatal("big never ran out")
		}
		if s := call("big"); s == http.StatusTooManyRequests {
			break
		}
	}
	// Settling follows the answer: the store's totals are read again at each
	// look, until the aggregate agrees with them.
	want := map[string]money.Micros{}
	var o admin.Overview
	waitFor(t, "the aggregate's flush", 20*time.Second, func() bool {
		for _, id := range []string{"big", "small"} {
			acct, err := a.Store().GetAccount(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want[id] = acct.Totals.Usage
		}
		var err error
		o, err = c.Overview(ctx, 5)
		return err == nil && o.Today.Spend == want["big"]+want["small"] && o.DeniedToday[billing.ReasonEmpty]+o.DeniedToday[billing.ReasonInsufficient] >= 1
	})
	if len(o.TopToday) != 2 || o.TopToday[0] != (admin.AccountSpend{Account: "big", Spend: want["big"]}) ||
		o.TopToday[1] != (admin.AccountSpend{Account: "small", Spend: want["small"]}) {
		t.Errorf("top today %+v, want big %s then small %s", o.TopToday, want["big"], want["small"])
	}
	if o.Month.Spend != o.Today.Spend || len(o.Days) != 30 || o.Days[29] != o.Today {
		t.Errorf("month %+v, days %d, last %+v; today %+v", o.Month, len(o.Days), o.Days[len(o.Days)-1], o.Today)
	}
	recent, err := c.RecentRequests(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	// The 429 is among the newest (a settlement may land just after the next
	// request's refusal: settling follows the answer).
	var denied, settled *admin.RecentRequest
	for i := range recent.Data[:3] {
		r := &recent.Data[i]
		switch {
		case r.Outcome == "denied" && denied == nil:
			denied = r
		case r.Outcome == "settled" && settled == nil:
			settled = r
		}
	}
	if len(recent.Data) != 10 || denied == nil || denied.Account != "big" || !strings.HasPrefix(denied.RequestID, "req_") || denied.Cost != 0 {
		t.Fatalf("no refusal of big among the newest: %+v", recent.Data[:3])
	}
	if settled == nil || settled.Cost <= 0 || settled.Model != "gpt-4" || settled.KeyName != "big-app" || settled.PromptTokens == 0 {
		t.Errorf("the last settled request: %+v", settled)
	}
	small, err := c.RecentRequests(ctx, "small", 50)
	if err != nil || len(small.Data) != 3 || small.Data[0].KeyName != "small-app" {
		t.Errorf("small's recent requests: %+v %v", small.Data, err)
	}
}
