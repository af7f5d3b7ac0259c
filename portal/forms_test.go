package portal

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

func TestStartPurchase(t *testing.T) {
	e := newEnv(t)
	e.account("acme") // $50 of credit; tier-1: $5 to $100 a purchase, $1,000 of credit
	c := e.login("acme")
	cases := []struct {
		name   string
		form   url.Values
		status int
		amount money.Micros // started, when 201
		text   string       // in the message, when refused
		field  string
	}{
		{"preset", url.Values{"amount": {"10"}}, http.StatusCreated, money.MustParse("10.00"), "", ""},
		{"custom with cents and a dollar sign", url.Values{"amount": {""}, "custom_amount": {"$25.50"}, "save_card": {"on"}}, http.StatusCreated, money.MustParse("25.50"), "", ""},
		{"below the minimum", url.Values{"amount": {"1"}}, http.StatusBadRequest, 0, "$1.00 is below the minimum purchase of $5.00.", "amount"},
		{"above the tier's maximum", url.Values{"amount": {"150"}}, http.StatusBadRequest, 0, "$150.00 is above your tier's maximum purchase of $100.00.", "amount"},
		{"fractions of a cent", url.Values{"amount": {""}, "custom_amount": {"10.001"}}, http.StatusBadRequest, 0, "whole cents", "custom_amount"},
		{"not a number", url.Values{"amount": {""}, "custom_amount": {"ten"}}, http.StatusBadRequest, 0, "in dollars", "custom_amount"},
		{"empty", url.Values{"amount": {""}}, http.StatusBadRequest, 0, "in dollars", "custom_amount"},
		{"zero", url.Values{"amount": {"0"}}, http.StatusBadRequest, 0, "greater than zero", "amount"},
		{"negative", url.Values{"amount": {"-10"}}, http.StatusBadRequest, 0, "in dollars", "amount"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(e.purchases.Starts())
			rec := e.do(http.MethodPost, "/billing/purchases", c, tc.form, c.jsonHeaders())
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			starts := e.purchases.Starts()
			if tc.status != http.StatusCreated {
				var b errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || !strings.Contains(b.Error.Message, tc.text) || b.Error.Field != tc.field {
					t.Errorf("refusal %+v (%v), want %q on %s", b.Error, err, tc.text, tc.field)
				}
				if len(starts) != n && tc.text != "" && !strings.Contains(tc.text, "$") {
					t.Errorf("a malformed amount reached the purchase service: %+v", starts[n:])
				}
				return
			}
			var out map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out["url"] != "https://checkout.example.test/pay/"+out["id"] || out["status"] != "pending" {
				t.Fatalf("answer %v %v", out, err)
			}
			s := starts[len(starts)-1]
			if s.Account != "acme" || s.Amount != tc.amount || s.ID != out["id"] || s.SaveCard != (tc.form.Get("save_card") == "on") {
				t.Errorf("started %+v", s)
			}
			if !strings.HasPrefix(s.ID, "pur_") || s.SuccessURL != "http://example.com/billing/?purchase="+s.ID || s.CancelURL != s.SuccessURL+"&canceled=1" {
				t.Errorf("return URLs %q %q", s.SuccessURL, s.CancelURL)
			}
		})
	}

	// Without script the form is redirected to the checkout, or shown the refusal.
	rec := e.do(http.MethodPost, "/billing/purchases", c, url.Values{"amount": {"10"}, CSRFField: {c.csrf}}, nil)
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "https://checkout.example.test/pay/pur_") {
		t.Errorf("plain form: %d → %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = e.do(http.MethodPost, "/billing/purchases", c, url.Values{"amount": {"1"}, CSRFField: {c.csrf}}, nil)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "below the minimum purchase of $5.00") {
		t.Errorf("plain form refused: %d %s", rec.Code, rec.Body)
	}

	// The public URL names the return, and provider failures say nothing was charged.
	e.h.PublicURL, _ = url.Parse("https://api.example.test/")
	e.purchases.StartFunc = func(context.Context, billing.Purchase, StartPurchase) (string, string, error) {
		return "", "", errors.New("connection reset")
	}
	rec = e.do(http.MethodPost, "/billing/purchases", c, url.Values{"amount": {"10"}}, c.jsonHeaders())
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "Nothing was charged") {
		t.Errorf("provider down: %d %s", rec.Code, rec.Body)
	}
	if s := e.purchases.Starts(); !strings.HasPrefix(s[len(s)-1].SuccessURL, "https://api.example.test/billing/?purchase=pur_") {
		t.Errorf("success URL %q", s[len(s)-1].SuccessURL)
	}
	e.purchases.StartFunc = func(context.Context, billing.Purchase, StartPurchase) (string, string, error) {
		return "", "", payments.ErrRejected
	}
	if rec = e.do(http.MethodPost, "/billing/purchases", c, url.Values{"amount": {"10"}}, c.jsonHeaders()); rec.Code != http.StatusBadGateway ||
		!strings.Contains(rec.Body.String(), "refused this purchase") {
		t.Errorf("provider refused: %d %s", rec.Code, rec.Body)
	}

	// No provider: no purchases.
	e.h = &Handler{Sessions: e.h.Sessions, Ledger: e.h.Ledger, Policy: e.h.Policy}
	if rec := e.do(http.MethodPost, "/billing/purchases", c, url.Values{"amount": {"10"}}, c.jsonHeaders()); rec.Code != http.StatusConflict {
		t.Errorf("without a provider: %d", rec.Code)
	}
	if page := e.do(http.MethodGet, "/billing/", c, nil, nil); strings.Contains(page.Body.String(), `id="add-form"`) {
		t.Error("the page offers purchases without a provider")
	}
}

func TestAutoRechargeForm(t *testing.T) {
	e := newEnv(t)
	e.account("acme")
	c := e.login("acme")
	ctx := context.Background()
	on := func(threshold, amount, limit string) url.Values {
		return url.Values{"enabled": {"on"}, "threshold": {threshold}, "amount": {amount}, "monthly_limit": {limit}}
	}
	cases := []struct {
		name   string
		form   url.Values
		status int
		want   billing.AutoRecharge // stored after
		text   string
	}{
		{"on", on("5", "20", "100"), http.StatusOK, billing.AutoRecharge{Enabled: true, Threshold: money.MustParse("5"), Amount: money.MustParse("20"), MonthlyLimit: money.MustParse("100")}, ""},
		{"below the minimum recharge", on("5", "2", "100"), http.StatusBadRequest, billing.AutoRecharge{Enabled: true, Threshold: money.MustParse("5"), Amount: money.MustParse("20"), MonthlyLimit: money.MustParse("100")}, "below the minimum of $5.00"},
		{"limit below the amount", on("5", "20", "10"), http.StatusBadRequest, billing.AutoRecharge{Enabled: true, Threshold: money.MustParse("5"), Amount: money.MustParse("20"), MonthlyLimit: money.MustParse("100")}, "no recharge could ever happen"},
		{"missing threshold", on("", "20", "100"), http.StatusBadRequest, billing.AutoRecharge{Enabled: true, Threshold: money.MustParse("5"), Amount: money.MustParse("20"), MonthlyLimit: money.MustParse("100")}, "threshold in dollars"},
		{"off keeps the amounts", url.Values{"threshold": {"1"}}, http.StatusOK, billing.AutoRecharge{Enabled: false, Threshold: money.MustParse("5"), Amount: money.MustParse("20"), MonthlyLimit: money.MustParse("100")}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(http.MethodPost, "/billing/auto-recharge", c, tc.form, c.jsonHeaders())
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.text) {
				t.Fatalf("%d %s, want %d with %q", rec.Code, rec.Body, tc.status, tc.text)
			}
			a, err := e.store.GetAccount(ctx, "acme")
			if err != nil || a.AutoRecharge != tc.want {
				t.Errorf("stored %+v, want %+v (%v)", a.AutoRecharge, tc.want, err)
			}
		})
	}
}

// TestSummaryAndUsage: what the page polls, against the ledger.
func TestSummaryAndUsage(t *testing.T) {
	e := newEnv(t)
	e.account("acme", "gpt-4o", "gpt-4o-mini")
	ctx := context.Background()
	e.spend("acme", e.keys["acme-batch"].ID, "gpt-4o", money.MustParse("0.004200"))
	e.spend("acme", "", "gpt-4o", money.MustParse("0.001000"))
	revoked, _, err := e.store.CreateKey(ctx, "acme", "old")
	if err != nil {
		t.Fatal(err)
	}
	e.spend("acme", revoked.ID, "gpt-4o-mini", money.MustParse("0.010000"))
	if err := e.store.RevokeKey(ctx, "acme", revoked.ID); err != nil {
		t.Fatal(err)
	}
	c := e.login("acme")
	a, _ := e.store.GetAccount(ctx, "acme")

	var s summaryJSON
	rec := e.do(http.MethodGet, "/billing/api/summary", c, nil, nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err, rec.Body)
	}
	if s.Balance != a.Balance() || s.Available != a.Available() || s.LastEventID != a.LastEventID || len(s.Grants) != 1 || s.Grants[0].Remaining != a.Credit {
		t.Errorf("summary %+v, account %+v", s, a)
	}
	if s.Tier.Name != "tier-1" || *s.Tier.MaxTopUp != money.MustParse("100") || *s.Tier.MaxBalance != money.MustParse("1000") || s.MinPurchase != money.MustParse("5") {
		t.Errorf("tier %+v", s.Tier)
	}
	if !strings.Contains(rec.Body.String(), `"balance":"`+a.Balance().String()+`"`) {
		t.Errorf("money is not a six-place decimal string: %s", rec.Body)
	}

	var u usageJSON
	rec = e.do(http.MethodGet, "/billing/api/usage", c, nil, nil)
	if err := json.Unmarshal(rec.Body.Bytes(), &u); err != nil {
		t.Fatal(err)
	}
	var cellSum money.Micros
	for _, cell := range u.Cells {
		cellSum += cell.Cost
	}
	wantTotal := money.MustParse("1.234567") + money.MustParse("2.469134") + money.MustParse("0.0152")
	if u.Total.Cost != wantTotal || cellSum != wantTotal || u.Total.Requests != 5 || len(u.Recent) != 5 {
		t.Errorf("usage total %s (cells %s) in %d requests, %d recent; want %s in 5", u.Total.Cost, cellSum, u.Total.Requests, len(u.Recent), wantTotal)
	}
	keys := map[string]money.Micros{}
	for _, r := range u.ByKey {
		name := r.Name
		if r.Deleted {
			name = "(deleted)"
		}
		keys[name] = r.Cost
	}
	want := map[string]money.Micros{"acme-backend": money.MustParse("3.703701"), "acme-batch": money.MustParse("0.0042"), "": money.MustParse("0.001"), "(deleted)": money.MustParse("0.01")}
	if len(keys) != len(want) {
		t.Errorf("by key %v, want %v", keys, want)
	}
	for k, v := range want {
		if keys[k] != v {
			t.Errorf("key %q: %s, want %s", k, keys[k], v)
		}
	}
	if strings.Contains(rec.Body.String(), e.keys["acme-backend"].ID) {
		t.Error("the usage answer shows key ids")
	}
	if u.Recent[0].Model != "gpt-4o-mini" || u.Recent[0].Cost != money.MustParse("0.01") || !u.Recent[0].At.After(u.Recent[4].At.Add(-1)) {
		t.Errorf("recent, newest first: %+v", u.Recent)
	}
	if u.ByModel[0].Name != "gpt-4o-mini" || u.ByModel[0].Cost != money.MustParse("2.479134") || len(u.Days) == 0 || u.Days[0][8:] != "01" {
		t.Errorf("by model %+v, days %v", u.ByModel, u.Days)
	}
}

func TestCardsOnFile(t *testing.T) {
	visa := &payments.Card{ID: "pm_1", Brand: "visa", Last4: "4242", ExpMonth: 4, ExpYear: 2031}
	cases := []struct {
		name    string
		profile billing.PaymentProfile
		err     error
		want    *payments.Card
		wantErr bool
	}{
		{"saved", billing.PaymentProfile{Provider: "stripe", CustomerID: "cus_1", PaymentMethodID: "pm_1"}, nil, visa, false},
		{"no customer", billing.PaymentProfile{}, nil, nil, false},
		{"no profile", billing.PaymentProfile{}, billing.ErrAccountNotFound, nil, false},
		{"store down", billing.PaymentProfile{}, billing.ErrUnavailable, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := CardsOnFile{
				Profiles: &fakeProfiles{GetPaymentProfileFunc: func(context.Context, string) (billing.PaymentProfile, error) { return tc.profile, tc.err }},
				Provider: &fakeProvider{PaymentMethodFunc: func(_ context.Context, customer string) (*payments.Card, error) {
					if customer != "cus_1" {
						t.Errorf("asked the provider for customer %q", customer)
					}
					return visa, nil
				}},
			}
			got, err := c.PaymentMethod(context.Background(), "acme")
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("%v %v, want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
	if s := visa.String(); s != "Visa •••• 4242" {
		t.Errorf("card shown as %q", s)
	}
}

type fakeProfiles struct {
	GetPaymentProfileFunc func(ctx context.Context, account string) (billing.PaymentProfile, error)
}

func (f *fakeProfiles) GetPaymentProfile(ctx context.Context, a string) (billing.PaymentProfile, error) {
	return f.GetPaymentProfileFunc(ctx, a)
}

type fakeProvider struct {
	PaymentMethodFunc func(ctx context.Context, customerID string) (*payments.Card, error)
}

func (f *fakeProvider) PaymentMethod(ctx context.Context, c string) (*payments.Card, error) {
	return f.PaymentMethodFunc(ctx, c)
}
