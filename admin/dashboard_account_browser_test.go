package admin_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// TestDashboardAccountSettingsInBrowser drives the account view's settings form
// in headless Chromium against the admin API on real Redis, signed in with
// scoped tokens: an admin token suspends the account and sets a spend limit (the
// store and the ledger have it, booked by the token's name); invalid fields are
// each named at once and nothing changes; a token with read and keys sees the
// forms it may not use turned off, and the one it may use on.
func TestDashboardAccountSettingsInBrowser(t *testing.T) {
	browser := requireBrowser(t)
	clk := &clock{}
	store := newRedisLedger(t, clk.now)
	ctx := context.Background()
	seedHistory(t, store, clk, testPolicy)
	policy := testPolicy
	policy.Tiers = map[string]billing.Tier{"tier-1": testPolicy.Tiers["tier-1"], "tier-2": {}}
	const opsToken, supportToken = "dash-ops-token-0123456789", "dash-support-token-0123456789"
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return policy },
		ScopedTokens: func() []admin.Token {
			return []admin.Token{
				{Secret: opsToken, Name: "ops", Scopes: []admin.Scope{admin.ScopeAdmin}},
				{Secret: supportToken, Name: "support", Scopes: []admin.Scope{admin.ScopeRead, admin.ScopeKeys}},
			}
		}, Ready: store.Ping}).Handler())
	t.Cleanup(srv.Close)

	tab := openTab(t, browser)
	do, waitFor, eval := tab.do, tab.waitFor, tab.eval
	signIn := func(tok, name string) {
		t.Helper()
		do("open the page", chromedp.Navigate(srv.URL+"/dashboard/#/accounts/acme"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
		do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), tok), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
		waitFor("signed in as "+name, `document.querySelector("#whoami").textContent.startsWith("Signed in as `+name+` ")`+
			` && document.querySelector("#account-id").textContent === "acme" && document.querySelector("#acct-tier").value === "tier-1"`)
	}
	account := func() billing.Account {
		t.Helper()
		a, err := store.GetAccount(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	setField := func(id, v string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`document.querySelector(` + jsString(id) + `).value = ` + jsString(v))
	}

	signIn(opsToken, "ops")
	if got := eval(`document.querySelector("#account-form").dataset.allowed + document.querySelector("#topup-form").dataset.allowed`); got != "yesyes" {
		t.Fatalf("an admin token's forms: allowed %q", got)
	}
	before := account()
	do("suspend and limit", setField("#acct-status", "suspended"), setField("#acct-spend-limit", "100"), setField("#acct-alert-at", "80"),
		setField("#acct-name", "Acme Corp"), chromedp.Click(chromedp.CSS(`#account-form button[type="submit"]`)))
	waitFor("saved", `document.querySelector("#account-result").textContent.startsWith("Saved")`+
		` && document.querySelector('#account-summary dd[data-field="status"]').textContent === "suspended"`+
		` && document.querySelector('#account-summary dd[data-field="spend_limit"]').textContent === "$100.000000/month, alert at $80.000000"`)
	a := account()
	if a.Status != billing.StatusSuspended || a.SpendLimit != (billing.SpendLimit{Monthly: money.MustParse("100"), AlertAt: money.MustParse("80")}) ||
		a.Name != "Acme Corp" || a.Balance() != before.Balance() {
		t.Fatalf("after saving: %+v", a)
	}
	page, err := store.Events(ctx, "acme", before.LastEventID, 10)
	if err != nil || len(page.Events) != 1 || page.Events[0].Type != billing.EventAccountUpdate || page.Events[0].Actor != "ops" || len(page.Events[0].Changes) != 4 {
		t.Fatalf("events after saving: %+v %v", page.Events, err)
	}
	// Null-safe: the table is rebuilt on each refresh.
	waitFor("the ledger shows who", `document.querySelector("#ledger tbody tr")?.dataset.type === "account_update"`+
		` && !!document.querySelector("#ledger tbody tr td.details")?.textContent.includes("status=– → suspended")`+
		` && !!document.querySelector("#ledger tbody tr td.details")?.textContent.includes("by=ops")`)

	// Every bad field named at once; nothing changes.
	do("bad fields", setField("#acct-email", "nobody"), setField("#acct-tier", "gold"), setField("#acct-alert-at", "200"),
		chromedp.Click(chromedp.CSS(`#account-form button[type="submit"]`)))
	waitFor("problems", `document.querySelector("#account-result").textContent.startsWith("Not saved")`+
		` && [...document.querySelectorAll("#account-problems li")].map((li) => li.dataset.param).sort().join(",") === "email,spend_limit.alert_at,tier"`)
	if after := account(); after.Email != "" || after.Tier != "tier-1" || after.LastEventID != a.LastEventID {
		t.Fatalf("a refused change changed the account: %+v", after)
	}

	// A token with read and keys: the settings and money forms are off, keys on.
	do("sign out", chromedp.Click(chromedp.CSS("#sign-out")))
	signIn(supportToken, "support")
	waitFor("scopes applied", `document.querySelector("#account-form").dataset.allowed === "no"`+
		` && document.querySelector("#account-form button[type=submit]").disabled`+
		` && document.querySelector("#topup-form").dataset.allowed === "no" && document.querySelector("#adjust-form").dataset.allowed === "no"`+
		` && document.querySelector("#key-form").dataset.allowed === "yes" && !document.querySelector("#key-name").disabled`+
		` && document.querySelector("#account-form .scope-note").textContent.includes("needs the admin scope")`)
	if v := eval(`JSON.stringify(window.__cspViolations)`); v != "[]" {
		t.Errorf("CSP violations: %s", v)
	}
}
