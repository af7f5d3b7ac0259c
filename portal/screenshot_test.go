package portal

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/browser"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the Billing page's screenshots to docs/billing-page.png and docs/billing-page-narrow.png")

// clock is a settable clock for the ledger and the page.
type clock struct{ at atomic.Pointer[time.Time] }

func (c *clock) now() time.Time  { return *c.at.Load() }
func (c *clock) set(t time.Time) { c.at.Store(&t) }

// TestBillingPageScreenshot renders the page with a month of realistic data at
// a desktop and a phone width, checks the page drew it all without a problem,
// and with -update-screenshot writes the pictures the README shows:
//
//	go test ./portal -run TestBillingPageScreenshot -update-screenshot
func TestBillingPageScreenshot(t *testing.T) {
	b := browser.Require(t, "the Billing page's browser test")
	ctx := context.Background()
	usd := money.MustParse
	now := time.Date(2026, 3, 24, 16, 20, 0, 0, time.UTC)
	clk := &clock{}
	clk.set(now.AddDate(0, -1, -4))
	store := newRedisLedger(t, clk.now)
	sessions := newMemPortalStore(clk.now)
	if _, err := store.CreateAccount(ctx, "acme-labs", "tier-1"); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, name := range []string{"production", "staging", "batch-jobs"} {
		k, _, err := store.CreateKey(ctx, "acme-labs", name)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = k.ID
	}
	history := &fakePurchases{CheckFunc: limitsOf(store, testPolicy), StartFunc: func(_ context.Context, p billing.Purchase, _ StartPurchase) (string, string, error) {
		return "cs_" + p.ID, "https://checkout.example.test/" + p.ID, nil
	}}
	buy := func(id string, at time.Time, amount money.Micros, source string, expires time.Time) {
		t.Helper()
		clk.set(at)
		if _, err := store.TopUp(ctx, testPolicy, billing.TopUpRequest{Account: "acme-labs", GrantID: id, Amount: amount, Source: source, ExpiresAt: expires, SkipLimits: true}); err != nil {
			t.Fatal(err)
		}
		if source == billing.SourcePurchase {
			history.add(billing.Purchase{ID: id, Account: "acme-labs", Amount: amount, PaidAmount: amount, Status: billing.PurchasePaid, Provider: "stripe",
				PaymentRef: "pi_" + id, CreatedAt: at, SettledAt: at.Add(time.Minute)})
		}
	}
	buy("grant_welcome", now.AddDate(0, -1, -4), usd("20.00"), billing.SourcePromo, now.Add(12*24*time.Hour+3*time.Hour))
	buy("pur_feb", now.AddDate(0, -1, 0), usd("50.00"), billing.SourcePurchase, time.Time{})
	buy("pur_mar", now.Add(-10*24*time.Hour), usd("100.00"), billing.SourcePurchase, time.Time{})
	history.add(billing.Purchase{ID: "pur_expired", Account: "acme-labs", Amount: usd("25.00"), Status: billing.PurchaseExpired, Provider: "stripe",
		CreatedAt: now.Add(-3 * 24 * time.Hour), SettledAt: now.Add(-2 * 24 * time.Hour)})

	n := 0
	use := func(at time.Time, key, model string, prompt, completion int64, cost money.Micros) {
		t.Helper()
		n++
		clk.set(at)
		hold := fmt.Sprintf("req_shot_%d", n)
		res, err := store.Reserve(ctx, billing.ReserveRequest{Account: "acme-labs", HoldID: hold, Estimate: cost, Minimum: cost, Grace: testPolicy.Grace, TTL: time.Minute})
		if err != nil || !res.Admitted {
			t.Fatalf("reserve: %+v %v", res, err)
		}
		if _, err := store.Settle(ctx, billing.SettleRequest{Account: "acme-labs", HoldID: hold, Cost: cost, Usage: billing.Usage{RequestID: hold,
			KeyID: keys[key], Model: model, Endpoint: "/v1/chat/completions", PromptTokens: prompt, CompletionTokens: completion, TokenSource: billing.TokenSourceUpstream}}); err != nil {
			t.Fatal(err)
		}
	}
	monthStart := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for day := 0; day < 24; day++ {
		at := monthStart.AddDate(0, 0, day)
		weekday := at.Weekday() != time.Saturday && at.Weekday() != time.Sunday
		scale := int64(2 + day%5)
		if weekday {
			scale += 4
		}
		use(at, "production", "gpt-4o", 4200*scale, 900*scale, money.Micros(scale*191_300+int64(day)*7_919))
		use(at.Add(time.Hour), "production", "gpt-4o-mini", 9000*scale, 2100*scale, money.Micros(scale*23_417))
		if day%2 == 0 {
			use(at.Add(2*time.Hour), "batch-jobs", "o3-mini", 3000*scale, 6000*scale, money.Micros(scale*61_003))
		}
		if weekday {
			use(at.Add(3*time.Hour), "staging", "gpt-4o-mini", 1200, 400, money.Micros(420+day*31))
		}
	}
	for i := range 6 {
		use(now.Add(-time.Duration(6-i)*7*time.Minute), []string{"production", "staging"}[i%2], []string{"gpt-4o", "gpt-4o-mini", "o3-mini"}[i%3],
			int64(800+i*137), int64(220+i*61), money.Micros(1_900+i*3_301))
	}
	clk.set(now)
	if err := store.SetAutoRecharge(ctx, "acme-labs", billing.AutoRecharge{Enabled: true, Threshold: usd("10.00"), Amount: usd("25.00"), MonthlyLimit: usd("100.00")}); err != nil {
		t.Fatal(err)
	}

	h := &Handler{Sessions: sessions, Ledger: store, Keys: store, Purchases: history, History: history,
		Cards:    &fakeCards{cards: map[string]*payments.Card{"acme-labs": {ID: "pm_1", Brand: "visa", Last4: "4242", ExpMonth: 8, ExpYear: 2029}}},
		Receipts: &fakeReceipts{ReceiptURLFunc: func(context.Context, string) (string, error) { return "https://pay.example.test/receipt", nil }},
		Provider: "stripe", Policy: func() billing.Policy { return testPolicy }, Now: clk.now}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	for _, shot := range []struct {
		name          string
		width, height int
	}{{"billing-page.png", 1280, 900}, {"billing-page-narrow.png", 390, 844}} {
		t.Run(shot.name, func(t *testing.T) {
			token := randomToken()
			if err := sessions.CreatePortalLink(ctx, billing.HashKey(token), billing.PortalLink{Account: "acme-labs", ReturnURL: "https://app.example.test/", ExpiresAt: now.Add(10 * time.Minute)}); err != nil {
				t.Fatal(err)
			}
			tab := browser.Open(t, b, shot.width, shot.height)
			// A window cannot be narrower than Chromium's minimum; the viewport can.
			tab.Do("viewport", chromedp.EmulateViewport(int64(shot.width), int64(shot.height), chromedp.EmulateMobile))
			tab.Do("open", chromedp.Navigate(srv.URL+"/billing/login?token="+token))
			tab.WaitFor("drawn", `document.querySelectorAll("#chart rect[data-model]").length > 40 && document.querySelectorAll("#recent tbody tr").length === 20 &&
				document.querySelector("#card").textContent.startsWith("Visa") && document.querySelectorAll("#purchases tbody tr").length === 3`)
			if got := tab.Eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`); got != "true" {
				t.Errorf("the page is wider than a %dpx window", shot.width)
			}
			if got := tab.Text(`#grants tr[data-grant="grant_welcome"] time`); got != "expires in 12 days" {
				t.Errorf("the promotion's expiry reads %q", got)
			}
			png := tab.Screenshot(true)
			path := filepath.Join(t.TempDir(), shot.name)
			if *updateScreenshot {
				path = filepath.Join("..", "docs", shot.name)
			}
			if err := os.WriteFile(path, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s (%d bytes)", path, len(png))
			tab.CheckClean()
		})
	}
}
