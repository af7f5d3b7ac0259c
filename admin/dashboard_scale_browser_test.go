package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// TestDashboardScalesInBrowser drives the dashboard against more than it shows
// at once: 231 accounts (more than a page of the list, and more than the 200 the
// page once looked up expiries for) and an account whose ledger is more than
// two pages long. The list pages by the server's cursor (every account once,
// each with its next expiry) and finds an account by a part of its id; the
// ledger shows the newest event first and pages back to the oldest with "Load
// older events"; the chart's spend per day and model is the seeded spend; and
// the page never reads the ledger oldest first.
func TestDashboardScalesInBrowser(t *testing.T) {
	browser := requireBrowser(t)
	clk := &clock{}
	store := newRedisLedger(t, clk.now)
	usd := money.MustParse
	policy := testPolicy
	ctx := context.Background()
	now := time.Now().UTC()

	// 230 accounts acct-000…acct-229 (the last with a promotional grant), and
	// bigco, which sorts after them: both on the list's last page.
	for i := range 230 {
		if _, err := store.CreateAccount(ctx, fmt.Sprintf("acct-%03d", i), policy.DefaultTier); err != nil {
			t.Fatal(err)
		}
	}
	promoExpiry := now.Add(7 * 24 * time.Hour)
	if _, err := store.TopUp(ctx, policy, billing.TopUpRequest{Account: "acct-229", GrantID: "grant_promo", Amount: usd("10.00"),
		ExpiresAt: promoExpiry, Source: billing.SourcePromo}); err != nil {
		t.Fatal(err)
	}
	// bigco: a top-up 6 days ago, then 260 requests over the last 5 days.
	clk.set(now.Add(-6 * 24 * time.Hour))
	if _, err := store.CreateAccount(ctx, "bigco", policy.DefaultTier); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TopUp(ctx, policy, billing.TopUpRequest{Account: "bigco", GrantID: "grant_big", Amount: usd("100.00"), Source: billing.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	spend := map[string]int64{} // "day model" -> micro-USD
	models := []string{"gpt-4o", "gpt-4o-mini", "o3-mini"}
	use := func(i int, at time.Time, model string, cost money.Micros) {
		t.Helper()
		clk.set(at)
		hold := fmt.Sprintf("req_big_%d", i)
		if res, err := store.Reserve(ctx, billing.ReserveRequest{Account: "bigco", HoldID: hold, Estimate: cost, Minimum: cost, Grace: policy.Grace, TTL: policy.HoldTTL}); err != nil || !res.Admitted {
			t.Fatalf("reserve %d: %+v %v", i, res, err)
		}
		if _, err := store.Settle(ctx, billing.SettleRequest{Account: "bigco", HoldID: hold, Cost: cost, Usage: billing.Usage{RequestID: hold,
			Model: model, Endpoint: "/v1/chat/completions", PromptTokens: 100, CompletionTokens: 10, TokenSource: billing.TokenSourceUpstream}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 260 {
		at := now.Add(-5*24*time.Hour + time.Duration(i)*25*time.Minute) // ≈ 4.5 days, up to about now
		model := models[i%len(models)]
		cost := money.Micros(1_000 + i*37)
		use(i, at, model, cost)
		spend[at.Format(time.DateOnly)+" "+model] += int64(cost)
	}
	clk.real()

	var mu sync.Mutex
	var requests []string // the API requests the page made
	h := (&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return policy },
		Tokens: func() []string { return []string{token} }, Ready: store.Ping}).Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/admin/") {
			mu.Lock()
			requests = append(requests, r.URL.Path+"?"+r.URL.RawQuery)
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	tb := openTab(t, browser)
	do, waitFor, eval, text := tb.do, tb.waitFor, tb.eval, tb.text
	do("open the page", chromedp.Navigate(srv.URL+"/dashboard/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitFor("the first page of accounts", `document.querySelectorAll("#accounts tr[data-account]").length === 50`)
	if got := text("#accounts-range"); got != "1–50 of 231" {
		t.Errorf("accounts range %q", got)
	}
	allExpiries := `[...document.querySelectorAll('#accounts td[data-field="next_expiry"]')].every((td) => td.textContent !== "…" && td.textContent !== "")`
	waitFor("the first page's expiries", allExpiries)
	pageIDs := func() []string {
		var ids []string
		if err := json.Unmarshal([]byte(eval(`JSON.stringify([...document.querySelectorAll("#accounts tr[data-account]")].map((tr) => tr.dataset.account))`)), &ids); err != nil {
			t.Fatal(err)
		}
		return ids
	}

	// Page through every account with the server's cursor: 231 accounts, each
	// once, in pages of 50 and a last of 31; every row has its next expiry,
	// acct-229's from its promotion, bigco's from its purchase.
	seen := map[string]int{}
	for _, id := range pageIDs() {
		seen[id]++
	}
	for page := 2; page <= 5; page++ {
		do(fmt.Sprintf("page %d", page), chromedp.Click(chromedp.CSS("#accounts-next")))
		waitFor(fmt.Sprintf("page %d", page), `document.querySelector("#accounts-range").textContent.startsWith("`+fmt.Sprint((page-1)*50+1)+`–")`)
		waitFor(fmt.Sprintf("page %d's expiries", page), allExpiries)
		for _, id := range pageIDs() {
			seen[id]++
		}
		if got := text(`#accounts tr[data-account="acct-229"] td[data-field="next_expiry"]`); got != "" && !strings.HasPrefix(got, promoExpiry.Format("2006-01-02")) {
			t.Errorf("acct-229's next expiry %q, want %s…", got, promoExpiry.Format("2006-01-02"))
		}
	}
	waitFor("the last page", `document.querySelectorAll("#accounts tr[data-account]").length === 31 && document.querySelector("#accounts-next").disabled &&
		document.querySelector("#accounts-range").textContent === "201–231 of 231"`)
	if len(seen) != 231 || seen["bigco"] != 1 || seen["acct-229"] != 1 {
		t.Errorf("paging showed %d distinct accounts (bigco %d, acct-229 %d times), want all 231 once", len(seen), seen["bigco"], seen["acct-229"])
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s shown on %d pages", id, n)
		}
	}
	do("back a page", chromedp.Click(chromedp.CSS("#accounts-prev")))
	waitFor("page 4 again", `document.querySelector("#accounts-range").textContent === "151–200 of 231" && document.querySelectorAll("#accounts tr[data-account]").length === 50`)

	// Search: a part of the id, any case, finds bigco and only it.
	do("search bigco", chromedp.SendKeys(chromedp.CSS("#search-q"), "BigC"), chromedp.Click(chromedp.CSS(`#search-form button[type="submit"]`)))
	waitFor("bigco found", `document.querySelectorAll("#accounts tr[data-account]").length === 1 && document.querySelector('#accounts tr[data-account="bigco"]') !== null`)
	if got := text(`#accounts tr[data-account="bigco"] td[data-field="next_expiry"]`); !strings.HasSuffix(got, "UTC") {
		t.Errorf("bigco's next expiry %q", got)
	}

	// bigco's ledger: the newest page, newest first, then older pages to the start.
	acct, err := store.GetAccount(ctx, "bigco")
	if err != nil {
		t.Fatal(err)
	}
	do("open bigco", chromedp.Click(chromedp.CSS(`#accounts tr[data-account="bigco"] a`)))
	waitFor("bigco", `document.querySelector("#account-id").textContent === "bigco" && document.querySelectorAll("#chart rect[data-model]").length > 0 &&
		document.querySelectorAll("#ledger tr[data-event]").length > 0`)
	ledgerIDs := func() []string {
		var ids []string
		if err := json.Unmarshal([]byte(eval(`JSON.stringify([...document.querySelectorAll("#ledger tr[data-event]")].map((tr) => tr.dataset.event))`)), &ids); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(ids); i++ {
			if billing.CompareEventIDs(ids[i-1], ids[i]) <= 0 {
				t.Fatalf("ledger rows %d and %d out of order: %s, %s", i-1, i, ids[i-1], ids[i])
			}
		}
		return ids
	}
	if ids := ledgerIDs(); len(ids) != 100 || ids[0] != acct.LastEventID {
		t.Fatalf("ledger shows %d rows starting with %v; want 100 starting with the newest event %s", len(ids), ids[:min(1, len(ids))], acct.LastEventID)
	}
	for _, want := range []int{200, 261} {
		do("load older", chromedp.Click(chromedp.CSS("#ledger-more")))
		waitFor("older events", `document.querySelectorAll("#ledger tr[data-event]").length === `+fmt.Sprint(want))
	}
	ids := ledgerIDs()
	if eval(`document.querySelector("#ledger tbody tr:last-child").dataset.type`) != "topup" || eval(`String(document.querySelector("#ledger-more").hidden)`) != "true" {
		t.Errorf("after the last page: the oldest row is not the top-up, or Load older is still offered")
	}

	// The chart: spend per day and model, as seeded.
	var chart map[string]string
	if err := json.Unmarshal([]byte(eval(`(() => {
		const sums = {};
		for (const r of document.querySelectorAll("#chart rect[data-model]")) {
			const k = r.dataset.day + " " + r.dataset.model;
			sums[k] = (BigInt(sums[k] || "0") + BigInt(r.dataset.micros)).toString();
		}
		return JSON.stringify(sums);
	})()`)), &chart); err != nil {
		t.Fatal(err)
	}
	for k, want := range spend {
		if chart[k] != fmt.Sprint(want) {
			t.Errorf("chart: %s is %s micro-USD, seeded %d", k, chart[k], want)
		}
	}
	if len(chart) != len(spend) {
		t.Errorf("chart has %d day-model bars, seeded %d: %v", len(chart), len(spend), chart)
	}

	// New activity comes in on top; the older pages loaded stay.
	use(1000, time.Now().UTC(), "gpt-4o", usd("0.01"))
	do("refresh", chromedp.Click(chromedp.CSS("#refresh")))
	waitFor("the new event", `document.querySelectorAll("#ledger tr[data-event]").length === 262`)
	if got := ledgerIDs(); got[0] == ids[0] || got[1] != ids[0] || got[261] != ids[260] {
		t.Errorf("after a refresh the ledger starts %v and ends %s; before it started %s and ended %s", got[:2], got[261], ids[0], ids[260])
	}

	// The page read the ledger newest first, a page at a time, and never whole.
	mu.Lock()
	defer mu.Unlock()
	for _, req := range requests {
		path, query, _ := strings.Cut(req, "?")
		switch {
		case path == "/admin/v1/accounts" && !strings.Contains(query, "limit=50"):
			t.Errorf("the page read the account list whole: %s", req)
		case strings.HasPrefix(path, "/admin/v1/accounts/acct-"):
			t.Errorf("the page read an account it did not open (next expiries come with the search page): %s", req)
		case strings.HasSuffix(path, "/ledger") || strings.HasSuffix(path, "/ledger/export"):
			t.Errorf("the page read the ledger oldest first: %s", req)
		case strings.HasSuffix(path, "/ledger/recent") && !strings.Contains(query, "limit=100"):
			t.Errorf("a ledger page larger than 100 events: %s", req)
		}
	}
	if v := eval(`JSON.stringify(window.__cspViolations)`); v != "[]" {
		t.Errorf("CSP violations: %s", v)
	}
	for _, p := range tb.problems.get() {
		t.Errorf("page: %s", p)
	}
}
