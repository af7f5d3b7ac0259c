package admin_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
)

// TestDashboardKeySettingsInBrowser drives the account view's key forms in
// headless Chromium against the admin API on real Redis, signed in with a
// token of the keys scope: a key created with a limit, reset, models and
// disabled lists them; the edit form changes them (the store has it, the
// expiry cleared); invalid fields are each named at once and nothing changes.
func TestDashboardKeySettingsInBrowser(t *testing.T) {
	browser := requireBrowser(t)
	clk := &clock{}
	store := newRedisLedger(t, clk.now)
	ctx := context.Background()
	seedHistory(t, store, clk, testPolicy)
	const supportToken = "dash-support-token-0123456789"
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return testPolicy },
		ScopedTokens: func() []admin.Token {
			return []admin.Token{{Secret: supportToken, Name: "support", Scopes: []admin.Scope{admin.ScopeRead, admin.ScopeKeys}}}
		}, Ready: store.Ping}).Handler())
	t.Cleanup(srv.Close)

	tab := openTab(t, browser)
	do, waitFor := tab.do, tab.waitFor
	setField := func(id, v string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`document.querySelector(` + jsString(id) + `).value = ` + jsString(v))
	}
	check := func(id string, on bool) chromedp.Action[chromedp.Void] {
		v := "false"
		if on {
			v = "true"
		}
		return chromedp.Evaluate[chromedp.Void](`document.querySelector(` + jsString(id) + `).checked = ` + v)
	}
	do("open the page", chromedp.Navigate(srv.URL+"/dashboard/#/accounts/acme"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), supportToken), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitFor("signed in", `document.querySelector("#account-id").textContent === "acme" && document.querySelector("#key-form").dataset.allowed === "yes"`)

	do("create a limited key", setField("#key-name", "limited"), setField("#key-limit", "20"), setField("#key-limit-reset", "monthly"),
		setField("#key-expires", "2031-01-01"), setField("#key-models", "gpt-4o, gpt-4o-mini"), check("#key-disabled", true),
		chromedp.Click(chromedp.CSS(`#key-form button[type="submit"]`)))
	row := `document.querySelector('#keys tbody tr[data-key]:last-child')`
	waitFor("listed with its settings", `document.querySelector("#key-result").textContent.startsWith("Created")`+
		` && `+row+`?.querySelector('[data-field="limit"]').textContent === "20.000000 monthly"`+
		` && `+row+`?.querySelector('[data-field="models"]').textContent === "gpt-4o, gpt-4o-mini"`+
		` && `+row+`?.querySelector('[data-field="expires"]').textContent.startsWith("2031-01-01")`+
		` && `+row+`?.querySelector('[data-field="state"]').textContent === "disabled"`)
	keys, err := store.ListKeys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	k := keys[len(keys)-1]
	if k.Name != "limited" || k.Limit != 20_000_000 || k.LimitReset != billing.LimitMonthly || len(k.Models) != 2 || !k.Disabled || k.ExpiresAt.Year() != 2031 {
		t.Fatalf("stored %+v", k)
	}

	do("edit it", chromedp.Click(chromedp.CSS(`#keys tbody tr[data-key="`+k.ID+`"] button[data-action="edit"]`)))
	waitFor("the form shows it", `!document.querySelector("#key-edit-form").hidden && document.querySelector("#ke-limit").value === "20.000000"`+
		` && document.querySelector("#ke-disabled").checked`)
	do("enable, widen, no expiry", check("#ke-disabled", false), setField("#ke-models", ""), setField("#ke-expires", ""),
		setField("#ke-rpm", "60"), chromedp.Click(chromedp.CSS(`#key-edit-form button[type="submit"]`)))
	waitFor("saved", `document.querySelector("#key-edit-result").textContent.startsWith("Saved")`+
		` && document.querySelector('#keys tbody tr[data-key="`+k.ID+`"] [data-field="state"]')?.textContent === "enabled"`+
		` && document.querySelector('#keys tbody tr[data-key="`+k.ID+`"] [data-field="models"]')?.textContent === "all"`)
	keys, _ = store.ListKeys(ctx, "acme")
	k = keys[len(keys)-1]
	if k.Disabled || k.Models != nil || !k.ExpiresAt.IsZero() || k.RPM != 60 || k.Limit != 20_000_000 {
		t.Fatalf("after saving: %+v", k)
	}

	do("bad fields", setField("#ke-limit", "-5"), setField("#ke-tpm", "x"), setField("#ke-expires", "2001-01-01"),
		chromedp.Click(chromedp.CSS(`#key-edit-form button[type="submit"]`)))
	waitFor("problems", `document.querySelector("#key-edit-result").textContent.startsWith("Not saved")`+
		` && [...document.querySelectorAll("#key-edit-problems li")].map((li) => li.dataset.param).sort().join(",") === "expires_at,limit,tpm"`)
	keys, _ = store.ListKeys(ctx, "acme")
	if after := keys[len(keys)-1]; after.Limit != 20_000_000 || after.TPM != 0 || !after.ExpiresAt.IsZero() {
		t.Fatalf("a refused change changed the key: %+v", after)
	}
	if v := tab.eval(`JSON.stringify(window.__cspViolations)`); v != "[]" {
		t.Errorf("CSP violations: %s", v)
	}
}
