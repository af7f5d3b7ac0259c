package admin_test

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/activity"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// TestDashboardConsoleInBrowser is an operator's day in the console, in
// headless Chromium, every action through the admin API on real Redis: the
// overview and the recent requests across accounts (from the aggregate the
// proxy writes), creating an account, setting its auto-recharge (and the
// server's refusal of a bad one), searching and filtering the accounts,
// reading a ledger with key names and times to the second, and revoking a key
// after a cancelled first try. The store is checked after each action.
func TestDashboardConsoleInBrowser(t *testing.T) {
	browser := requireBrowser(t)
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := activity.NewRecorder(activity.RecorderOptions{Client: r.Client, Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	usd := money.MustParse

	// acme spends through its key "prod"; globex is in debt and gets a 429.
	for _, id := range []string{"acme", "globex"} {
		if _, err := store.CreateAccount(ctx, id, testPolicy.DefaultTier); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.TopUp(ctx, testPolicy, billing.TopUpRequest{Account: "acme", GrantID: "g1", Amount: usd("20.00"), Source: billing.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	prod, secret, err := store.CreateKey(ctx, "acme", "prod")
	if err != nil {
		t.Fatal(err)
	}
	spent := money.Micros(0)
	settle := func(account, hold, keyID string, cost money.Micros) {
		t.Helper()
		if res, err := store.Reserve(ctx, billing.ReserveRequest{Account: account, HoldID: hold, Estimate: cost, Grace: testPolicy.Grace, TTL: time.Minute}); err != nil || !res.Admitted {
			t.Fatalf("reserve: %+v %v", res, err)
		}
		st, err := store.Settle(ctx, billing.SettleRequest{Account: account, HoldID: hold, Cost: cost, Usage: billing.Usage{RequestID: hold, KeyID: keyID,
			Model: "gpt-4o", Endpoint: "/v1/chat/completions", PromptTokens: 1200, CompletionTokens: 300, TokenSource: billing.TokenSourceUpstream}})
		if err != nil {
			t.Fatal(err)
		}
		rec.Settled(activity.Request{Account: account, KeyID: keyID, RequestID: hold, Model: "gpt-4o", Endpoint: "/v1/chat/completions",
			PromptTokens: 1200, CompletionTokens: 300, Cost: st.Cost, BalanceAfter: st.BalanceAfter})
		spent += st.Cost
	}
	settle("acme", "req_a1", prod.ID, usd("1.25"))
	settle("acme", "req_a2", prod.ID, usd("0.75"))
	if _, err := store.TopUp(ctx, testPolicy, billing.TopUpRequest{Account: "globex", GrantID: "g2", Amount: usd("5.00"), Source: billing.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	settle("globex", "req_g1", "", usd("5.30")) // 0.30 past zero: debt
	rec.Denied(activity.Request{Account: "globex", RequestID: "req_g2", BalanceAfter: -usd("0.30")}, billing.ReasonEmpty)
	rec.RechargeFailed("declined")
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return testPolicy },
		Tokens: func() []string { return []string{token} }, Ready: store.Ping,
		Activity: &activity.Reader{Client: r.Client, Prefix: r.Prefix}}).Handler())
	t.Cleanup(srv.Close)

	tb := openTab(t, browser)
	do, waitFor, eval, text := tb.do, tb.waitFor, tb.eval, tb.text
	do("open the page", chromedp.Navigate(srv.URL+"/dashboard/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitFor("accounts", `document.querySelectorAll("#accounts tr[data-account]").length === 2`)

	// The overview and the recent requests across accounts.
	waitFor("overview", `document.querySelector('#overview-summary dd[data-field="spend_today"]') !== null`)
	for field, want := range map[string]string{
		"spend_today": formatUSD(spent), "spend_month": formatUSD(spent), "requests_today": "3", "denied_today": "1",
		"denied_reasons": "empty 1", "recharge_failures": "1 today, 1 this month",
	} {
		if got := text(`#overview-summary dd[data-field="` + field + `"]`); got != want {
			t.Errorf("overview %s: %q, want %q", field, got, want)
		}
	}
	if got := text(`#top-today tbody tr:first-child`) + " " + text(`#top-today tbody tr:nth-child(2)`); got != "globex"+formatUSD(usd("5.30"))+" acme"+formatUSD(usd("2.00")) {
		t.Errorf("top accounts today: %q", got)
	}
	waitFor("recent", `document.querySelectorAll("#recent tr[data-request]").length === 4`)
	if got := text(`#recent tr[data-request="req_g2"] td[data-field="outcome"]`); got != "429 empty" {
		t.Errorf("the 429's outcome: %q", got)
	}
	if got := text(`#recent tr[data-request="req_a2"] td[data-field="key"]`); got != "prod" {
		t.Errorf("acme's request key: %q, want its name", got)
	}

	// Create an account: the page opens it.
	do("create newco", chromedp.SendKeys(chromedp.CSS("#create-id"), "newco"), chromedp.Click(chromedp.CSS(`#create-form button[type="submit"]`)))
	waitFor("newco open", `document.querySelector("#account-id").textContent === "newco" && document.querySelector("#create-result").textContent.startsWith("Created") &&
		!document.querySelector("#create-form button").disabled`)
	if a, err := store.GetAccount(ctx, "newco"); err != nil || a.Tier != testPolicy.DefaultTier {
		t.Fatalf("newco in the store: %+v %v", a, err)
	}
	do("create it again", chromedp.SendKeys(chromedp.CSS("#create-id"), "newco"), chromedp.Click(chromedp.CSS(`#create-form button[type="submit"]`)))
	waitFor("refused", `document.querySelector("#create-result").textContent.startsWith("Not created")`)

	// Auto-recharge: a bad one refused by the server, then saved.
	setAR := func(threshold, amount, limit string) {
		t.Helper()
		for id, v := range map[string]string{"#ar-threshold": threshold, "#ar-amount": amount, "#ar-limit": limit} {
			do("fill "+id, chromedp.SetValue(chromedp.CSS(id), v))
		}
		if eval(`String(document.querySelector("#ar-enabled").checked)`) != "true" {
			do("turn on", chromedp.Click(chromedp.CSS("#ar-enabled")))
		}
		do("save", chromedp.Click(chromedp.CSS(`#autorecharge-form button[type="submit"]`)))
	}
	setAR("5", "20", "10")
	waitFor("refusal", `document.querySelector("#ar-result").textContent.startsWith("Not saved") && !document.querySelector("#autorecharge-form button").disabled`)
	if got := text("#ar-result"); !strings.Contains(got, "monthly_limit") {
		t.Errorf("the refusal %q does not name monthly_limit", got)
	}
	setAR("5", "20", "100")
	waitFor("saved", `document.querySelector("#ar-result").textContent.startsWith("Saved")`)
	a, err := store.GetAccount(ctx, "newco")
	if err != nil {
		t.Fatal(err)
	}
	if want := (billing.AutoRecharge{Enabled: true, Threshold: usd("5"), Amount: usd("20"), MonthlyLimit: usd("100")}); a.AutoRecharge != want {
		t.Errorf("newco's auto-recharge %+v, want %+v", a.AutoRecharge, want)
	}
	waitFor("summary", `document.querySelector('#account-summary dd[data-field="auto_recharge"]').textContent.startsWith("below $5.000000")`)

	// Search and filter. (A select is set as a person's choice would: value, then change.)
	selectFilter := func(v string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector("#search-filter"); s.value = ` + jsString(v) +
			`; s.dispatchEvent(new Event("change")); })()`)
	}
	do("search acm", chromedp.SendKeys(chromedp.CSS("#search-q"), "ACM"), chromedp.Click(chromedp.CSS(`#search-form button[type="submit"]`)))
	waitFor("acme only", `document.querySelectorAll("#accounts tr[data-account]").length === 1 && document.querySelector('#accounts tr[data-account="acme"]') !== null`)
	do("in debt", chromedp.Evaluate[chromedp.Void](`document.querySelector("#search-q").value = ""`), selectFilter("debt"),
		chromedp.Click(chromedp.CSS(`#search-form button[type="submit"]`)))
	waitFor("globex only", `document.querySelectorAll("#accounts tr[data-account]").length === 1 && document.querySelector('#accounts tr[data-account="globex"]') !== null`)
	do("all", selectFilter(""), chromedp.Click(chromedp.CSS(`#search-form button[type="submit"]`)))
	waitFor("all three", `document.querySelectorAll("#accounts tr[data-account]").length === 3`)
	if got := text(`#accounts tr[data-account="newco"] td[data-field="auto_recharge"]`); got != "on" {
		t.Errorf("newco's auto-recharge column %q", got)
	}

	// acme's ledger: times to the second, usage by the key's name.
	do("open acme", chromedp.Navigate(srv.URL+"/dashboard/#/accounts/acme"))
	waitFor("acme", `document.querySelector("#account-id").textContent === "acme" && document.querySelectorAll('#ledger tr[data-type="usage"]').length === 2 &&
		document.querySelector('#keys tr[data-key="`+prod.ID+`"]') !== null`)
	if got := text(`#ledger tr[data-type="usage"] td.details`); !strings.Contains(got, "key=prod") {
		t.Errorf("a usage event's details %q lack the key's name", got)
	}
	if got := text(`#ledger tr[data-type="usage"] td`); !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$`).MatchString(got) {
		t.Errorf("ledger time %q, want to the second", got)
	}

	// Revoke prod: cancelled first, then confirmed.
	row := `#keys tr[data-key="` + prod.ID + `"] `
	do("revoke", chromedp.Click(chromedp.CSS(row+`button[data-action="revoke"]`)))
	waitFor("asked", `document.querySelector('`+row+`button[data-action="confirm-revoke"]') !== null`)
	do("cancel", chromedp.Click(chromedp.CSS(row+`button[data-action="cancel-revoke"]`)))
	waitFor("back", `document.querySelector('`+row+`button[data-action="revoke"]') !== null`)
	if k, err := store.LookupKey(ctx, billing.HashKey(secret)); err != nil || k.ID != prod.ID {
		t.Fatalf("a cancelled revocation revoked the key: %+v %v", k, err)
	}
	do("revoke again", chromedp.Click(chromedp.CSS(row+`button[data-action="revoke"]`)))
	waitFor("asked again", `document.querySelector('`+row+`button[data-action="confirm-revoke"]') !== null`)
	do("confirm", chromedp.Click(chromedp.CSS(row+`button[data-action="confirm-revoke"]`)))
	waitFor("revoked", `document.querySelector('`+row+`') === null && document.querySelector("#keys-result").textContent === "Revoked prod."`)
	if keys, err := store.ListKeys(ctx, "acme"); err != nil || len(keys) != 0 {
		t.Errorf("after the revocation acme has keys %+v (%v)", keys, err)
	}
	if k, err := store.LookupKey(ctx, billing.HashKey(secret)); err == nil {
		t.Errorf("the revoked key still authenticates: %+v", k)
	}

	if v := eval(`JSON.stringify(window.__cspViolations)`); v != "[]" {
		t.Errorf("CSP violations: %s", v)
	}
	for _, p := range tb.problems.get() {
		t.Errorf("page: %s", p)
	}
}
