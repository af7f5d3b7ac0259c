package portal

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/recharge"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/browser"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/notify"
)

// fakeCharger is the auto-recharge charger (billing.auto_recharge.charger:
// webhook): SendFunc answers each recharge.
type fakeCharger struct {
	SendFunc func(ctx context.Context, m notify.Message) error
}

func (f *fakeCharger) Send(ctx context.Context, m notify.Message) error { return f.SendFunc(ctx, m) }
func (f *fakeCharger) MaxDuration() time.Duration                       { return 5 * time.Second }

// linkTo mints a portal link on s for account, valid ttl.
func linkTo(t *testing.T, sessions billing.PortalStore, s *site, account string, ttl time.Duration) string {
	t.Helper()
	token := randomToken()
	if err := sessions.CreatePortalLink(context.Background(), billing.HashKey(token),
		billing.PortalLink{Account: account, ReturnURL: "https://app.example.test/", ExpiresAt: time.Now().Add(ttl), Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	return s.srv.URL + "/billing/login?token=" + url.QueryEscape(token)
}

// settle charges cost to account as the proxy does, with auto-recharge armed.
func settle(t *testing.T, store *redisstore.Store, account, keyID, model string, cost money.Micros) billing.Settlement {
	t.Helper()
	ctx := context.Background()
	hold := billing.NewID("req_")
	res, err := store.Reserve(ctx, billing.ReserveRequest{Account: account, HoldID: hold, Estimate: cost, Minimum: cost, Grace: testPolicy.Grace, TTL: time.Minute})
	if err != nil || !res.Admitted {
		t.Fatalf("reserve: %+v %v", res, err)
	}
	st, err := store.Settle(ctx, billing.SettleRequest{Account: account, HoldID: hold, Cost: cost, Triggers: billing.Triggers{AutoRecharge: true},
		Usage: billing.Usage{RequestID: hold, KeyID: keyID, Model: model, Endpoint: "/v1/chat/completions", PromptTokens: 900, CompletionTokens: 300,
			TokenSource: billing.TokenSourceUpstream}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func balanceOf(t *testing.T, store *redisstore.Store, account string) money.Micros {
	t.Helper()
	a, err := store.GetAccount(context.Background(), account)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance()
}

// TestBillingPageInBrowser drives the Billing page in headless Chromium on
// real Redis: open a portal link, see the balance, add $10 through the demo
// provider and through Stripe (the stand-in's hosted page and its signed
// webhook), see the balance rise without a reload, change auto-recharge (a
// refusal first), spend below the threshold and see the recharge, and have a
// reused link, an expired one and a form without its CSRF token refused.
func TestBillingPageInBrowser(t *testing.T) {
	b := browser.Require(t, "the Billing page's browser test")
	ctx := context.Background()
	store := newRedisLedger(t, nil)
	sessions := portalStoreFor(store)
	usd := money.MustParse
	if _, err := store.CreateAccount(ctx, "acme", "tier-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TopUp(ctx, testPolicy, billing.TopUpRequest{Account: "acme", GrantID: "grant_welcome", Amount: usd("20.00"), Source: billing.SourcePromo,
		ExpiresAt: time.Now().Add(12*24*time.Hour + time.Hour)}); err != nil {
		t.Fatal(err)
	}
	key, _, err := store.CreateKey(ctx, "acme", "production")
	if err != nil {
		t.Fatal(err)
	}
	settle(t, store, "acme", key.ID, "gpt-4o", usd("0.981190"))
	demoSite := newSite(t, store, sessions, "demo")
	stripeSite := newSite(t, store, sessions, "stripe")

	tab := browser.Open(t, b, 1280, 1400)
	balanceIs := func(step string, want money.Micros) {
		t.Helper()
		tab.WaitFor(step, `document.querySelector("#balance").dataset.micros === `+browser.JSString(strconv.FormatInt(int64(want), 10)))
		if got, wantText := tab.Text("#balance"), usdText(want); got != wantText {
			t.Errorf("%s: balance shown as %q, want %q", step, got, wantText)
		}
	}

	// Open the link: the page, the balance as people read it, the exact figure on hover.
	first := linkTo(t, sessions, demoSite, "acme", 10*time.Minute)
	tab.Do("open the link", chromedp.Navigate(first))
	balanceIs("the balance", usd("19.018810"))
	if got := tab.Eval(`location.pathname + location.search`); got != "/billing/" {
		t.Errorf("after login the address is %q (the token must leave it)", got)
	}
	if got := tab.Eval(`document.querySelector("#balance").title`); got != "$19.018810" {
		t.Errorf("the exact balance on hover: %q", got)
	}
	if got := tab.Text("#demo-notice"); !strings.Contains(got, "nobody is charged") {
		t.Errorf("demo notice %q", got)
	}
	if got := tab.Eval(`document.cookie`); got != "" {
		t.Errorf("the session cookie is readable by script: %q", got)
	}
	tab.WaitFor("grant in words", `document.querySelector('#grants tr[data-grant="grant_welcome"] time')?.textContent === "expires in 12 days"`)
	tab.WaitFor("usage by key", `document.querySelector('#by-key tr[data-key="production"]') !== null && document.querySelector("#recent tbody tr") !== null`)
	if strings.Contains(tab.Text("#by-key"), key.ID) {
		t.Error("the usage by key shows the key id")
	}

	// Add $10 through the demo provider ($10 is preselected).
	if got := tab.Text("#add-button"); got != "Add $10.00" {
		t.Errorf("the add button says %q", got)
	}
	tab.Do("add $10", chromedp.Click(chromedp.CSS("#add-button")))
	tab.WaitFor("demo checkout", `location.pathname.startsWith("/billing/checkout/demo/") && document.querySelector("#pay") !== null`)
	if got := tab.Text("#demo-notice"); !strings.Contains(got, "nobody is charged") {
		t.Errorf("the checkout page's notice %q", got)
	}
	tab.Do("pay", chromedp.Click(chromedp.CSS("#pay")))
	tab.WaitFor("back, paid", `location.pathname === "/billing/" && new URLSearchParams(location.search).has("purchase") &&
		document.querySelector("#purchase-notice").textContent.includes("Payment received: $10.00")`)
	balanceIs("after the demo purchase", usd("29.018810"))
	if got := balanceOf(t, store, "acme"); got != usd("29.018810") {
		t.Fatalf("store balance %s after one $10 purchase", got)
	}
	tab.WaitFor("history", `document.querySelector('#purchases tbody tr td[data-field="status"]')?.textContent === "Paid"`)

	// Live: credit and usage arriving from elsewhere show without a reload.
	tab.Eval(`(window.__noReload = "yes")`)
	if _, err := store.TopUp(ctx, testPolicy, billing.TopUpRequest{Account: "acme", GrantID: "grant_operator", Amount: usd("5.00"), Source: billing.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	balanceIs("a top-up, live", usd("34.018810"))
	settle(t, store, "acme", key.ID, "gpt-4o-mini", usd("0.004321"))
	balanceIs("a call, live", usd("34.014489"))
	tab.WaitFor("the call in recent requests", `document.querySelector("#recent tbody tr td:nth-child(2)")?.textContent === "gpt-4o-mini"`)
	if got := tab.Eval(`String(window.__noReload)`); got != "yes" {
		t.Fatal("the page reloaded to show the change")
	}

	// Stripe: the stand-in's hosted page, its signed webhook, the saved card and a receipt.
	tab.Do("open the Stripe site", chromedp.Navigate(linkTo(t, sessions, stripeSite, "acme", 10*time.Minute)))
	balanceIs("Stripe site", usd("34.014489"))
	if tab.Eval(`String(document.querySelector("#demo-notice") === null)`) != "true" {
		t.Error("the Stripe site says it is a demo")
	}
	tab.Do("save the card", chromedp.Click(chromedp.CSS("#save-card")))
	tab.Do("add $10 by Stripe", chromedp.Click(chromedp.CSS("#add-button")))
	stubHost := strings.TrimPrefix(stripeSite.stub.URL, "http://")
	tab.WaitFor("Stripe's page", `location.host === `+browser.JSString(stubHost)+` && document.querySelector("#pay") !== null`)
	tab.Do("pay on Stripe", chromedp.Click(chromedp.CSS("#pay")))
	tab.WaitFor("back from Stripe", `location.pathname === "/billing/" && document.querySelector("#purchase-notice").textContent.includes("Payment received: $10.00")`)
	balanceIs("after the Stripe purchase", usd("44.014489"))
	tab.WaitFor("card on file", `document.querySelector("#card").textContent.startsWith("Visa •••• 4242")`)
	tab.WaitFor("receipt link", `document.querySelector('#purchases tbody tr a')?.textContent === "Receipt"`)
	receipt := tab.Eval(`document.querySelector('#purchases tbody tr a').href`)
	if !strings.HasPrefix(receipt, stripeSite.srv.URL+"/billing/receipts/pur_") {
		t.Errorf("receipt link %q", receipt)
	}

	// Auto-recharge: the server's refusal, then settings that save.
	setField := func(sel, v string) {
		tab.Eval(`(document.querySelector(` + browser.JSString(sel) + `).value = "")`)
		tab.Do("type "+sel, chromedp.SendKeys(chromedp.CSS(sel), v))
	}
	tab.Do("turn on", chromedp.Click(chromedp.CSS("#ar-enabled")))
	setField("#ar-threshold", "100")
	setField("#ar-amount", "1")
	setField("#ar-limit", "50")
	tab.Do("save", chromedp.Click(chromedp.CSS("#ar-save")))
	tab.WaitFor("refusal", `document.querySelector("#ar-result").textContent === "Not saved: The recharge amount $1.00 is below the minimum of $5.00."`)
	if tab.Eval(`document.querySelector("#ar-amount").getAttribute("aria-invalid")`) != "true" {
		t.Error("the refused field is not marked")
	}
	setField("#ar-amount", "10")
	tab.Do("save", chromedp.Click(chromedp.CSS("#ar-save")))
	tab.WaitFor("saved", `document.querySelector("#ar-result").textContent === "Saved: auto-recharge is on."`)
	if !strings.Contains(tab.Text("#recharge-form"), "Manual top-ups don't count toward this limit") {
		t.Error("the monthly limit's hint is missing")
	}
	a, _ := store.GetAccount(ctx, "acme")
	if want := (billing.AutoRecharge{Enabled: true, Threshold: usd("100"), Amount: usd("10"), MonthlyLimit: usd("50")}); a.AutoRecharge != want {
		t.Fatalf("stored auto-recharge %+v, want %+v", a.AutoRecharge, want)
	}

	// Spend below the threshold: the charger is asked and the recharge shows.
	var charged atomic.Int32
	worker, err := recharge.New(recharge.Options{Store: store, Charger: recharge.WebhookCharger{Sender: &fakeCharger{SendFunc: func(context.Context, notify.Message) error {
		charged.Add(1)
		return nil
	}}}, Settings: func() recharge.Settings { return recharge.Settings{CreditTTL: testPolicy.CreditTTL} }})
	if err != nil {
		t.Fatal(err)
	}
	st := settle(t, store, "acme", key.ID, "gpt-4o", usd("0.500000"))
	if st.RechargeID == "" {
		t.Fatal("spending below the threshold started no recharge")
	}
	worker.PerformRecharge(ctx, "acme", st.RechargeID)
	if charged.Load() != 1 {
		t.Fatalf("the charger was asked %d times", charged.Load())
	}
	balanceIs("after the recharge", usd("53.514489"))
	tab.WaitFor("recharge shown", `[...document.querySelectorAll("#grants tbody tr td:first-child")].some((td) => td.textContent === "Auto-recharge") &&
		document.querySelector("#ar-state").textContent.includes("Recharged this month: $10.00 of $50.00")`)

	// A form posted without its CSRF token is refused, and changes nothing.
	tab.Eval(`(() => { const f = document.querySelector("#recharge-form");
		f.querySelector('input[name="csrf"]').remove();
		f.querySelector("#ar-amount").value = "99";
		HTMLFormElement.prototype.submit.call(f); return ""; })()`)
	tab.WaitFor("CSRF refusal", `document.querySelector("#title")?.textContent === "Refused"`)
	if a, _ := store.GetAccount(ctx, "acme"); a.AutoRecharge.Amount != usd("10") {
		t.Errorf("a form without its CSRF token changed the amount to %s", a.AutoRecharge.Amount)
	}

	// A reused link and an expired one are refused.
	tab.Do("reuse the first link", chromedp.Navigate(first))
	tab.WaitFor("reused", `document.querySelector("#title")?.textContent === "Link expired"`)
	expired := linkTo(t, sessions, demoSite, "acme", 100*time.Millisecond)
	time.Sleep(250 * time.Millisecond)
	tab.Do("open an expired link", chromedp.Navigate(expired))
	tab.WaitFor("expired", `document.querySelector("#title")?.textContent === "Link expired"`)

	tab.CheckClean()
}

// usdText is an amount as the page shows it: to the cent, half away from zero.
func usdText(m money.Micros) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	cents := (int64(m) + 5000) / 10000
	whole := strconv.FormatInt(cents/100, 10)
	for i := len(whole) - 3; i > 0; i -= 3 {
		whole = whole[:i] + "," + whole[i:]
	}
	return fmt.Sprintf("%s$%s.%02d", sign, whole, cents%100)
}
