package admin_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/activity"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/browser"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the dashboard end-to-end test's screenshot to docs/dashboard.png")

// token is the admin token the browser tests sign in with.
const token = "browser-admin-token-0123456789"

// requireBrowser returns the browser to drive, or skips t (fails it when a
// browser is required).
func requireBrowser(t *testing.T) string {
	t.Helper()
	return browser.Require(t, "the dashboard's browser test")
}

func noBrowser(t *testing.T, why string) {
	t.Helper()
	browser.Unavailable(t, "the dashboard's browser test", why)
}

// clock is the store's clock: the past while the test writes history, then now.
type clock struct{ at atomic.Pointer[time.Time] }

func (c *clock) now() time.Time {
	if t := c.at.Load(); t != nil {
		return *t
	}
	return time.Now()
}
func (c *clock) set(t time.Time) { c.at.Store(&t) }
func (c *clock) real()           { c.at.Store(nil) }

// seeded is what the test wrote, to compare with what the page shows.
type seeded struct {
	spend map[string]money.Micros // acme's usage cost per model (all within the chart's 30 days)
}

// seedHistory writes ten days of usage for acme, an account in debt (globex)
// and one with a promotional grant that expires soon (initech).
func seedHistory(t *testing.T, store *redisstore.Store, clk *clock, policy billing.Policy) seeded {
	t.Helper()
	ctx := context.Background()
	usd := money.MustParse
	now := time.Now().UTC()
	s := seeded{spend: map[string]money.Micros{}}
	n := 0
	use := func(account, model, endpoint string, prompt, completion int64, cost money.Micros) {
		t.Helper()
		n++
		hold := fmt.Sprintf("req_seed_%d", n)
		res, err := store.Reserve(ctx, billing.ReserveRequest{Account: account, HoldID: hold, Estimate: cost, Minimum: cost, Grace: policy.Grace, TTL: policy.HoldTTL})
		if err != nil || !res.Admitted {
			t.Fatalf("seeding %s: reserve %s: %+v %v", account, cost, res, err)
		}
		if _, err := store.Settle(ctx, billing.SettleRequest{Account: account, HoldID: hold, Cost: cost, Usage: billing.Usage{
			RequestID: hold, KeyID: "key_seed", Model: model, Endpoint: endpoint, PromptTokens: prompt, CompletionTokens: completion,
			TokenSource: billing.TokenSourceUpstream}}); err != nil {
			t.Fatal(err)
		}
		if account == "acme" {
			s.spend[model] += cost
		}
	}
	topUp := func(account string, amount money.Micros, expires time.Time) {
		t.Helper()
		n++
		src := billing.SourcePurchase
		if !expires.IsZero() {
			src = billing.SourcePromo
		}
		if _, err := store.TopUp(ctx, policy, billing.TopUpRequest{Account: account, GrantID: fmt.Sprintf("grant_seed_%d", n), Amount: amount, ExpiresAt: expires, Source: src}); err != nil {
			t.Fatal(err)
		}
	}
	create := func(id string) {
		t.Helper()
		if _, err := store.CreateAccount(ctx, id, policy.DefaultTier); err != nil {
			t.Fatal(err)
		}
	}

	start := now.Add(-12 * 24 * time.Hour)
	clk.set(start)
	create("acme")
	topUp("acme", usd("50.00"), time.Time{})
	for day := 9; day >= 0; day-- {
		at := now.Add(-time.Duration(day)*24*time.Hour - 2*time.Hour)
		for i, u := range []struct {
			model    string
			endpoint string
			cost     money.Micros
		}{
			{"gpt-4o", "/v1/chat/completions", usd("0.42") + money.Micros(day*37_000)},
			{"gpt-4o-mini", "/v1/chat/completions", usd("0.09") + money.Micros((9-day)*21_000)},
			{"text-embedding-3-small", "/v1/embeddings", money.Micros(2_000 + day*300)},
		} {
			if u.model == "text-embedding-3-small" && day%3 != 0 {
				continue
			}
			clk.set(at.Add(time.Duration(i) * time.Minute))
			use("acme", u.model, u.endpoint, 1200, 800, u.cost)
		}
	}
	clk.set(now.Add(-3 * 24 * time.Hour))
	create("globex")
	topUp("globex", usd("5.00"), time.Time{})
	use("globex", "gpt-4o", "/v1/chat/completions", 90_000, 20_000, usd("5.30")) // 0.30 past zero: debt
	clk.set(now.Add(-24 * time.Hour))
	create("initech")
	topUp("initech", usd("20.00"), now.Add(5*24*time.Hour))
	clk.real()
	return s
}

// recordActivity gives the console's aggregate the accounts' settled requests,
// each at its own time, as the proxy would have, and returns its reader.
func recordActivity(t *testing.T, store *redisstore.Store, r *testredis.Store, accounts ...string) *activity.Reader {
	t.Helper()
	var at time.Time
	rec, err := activity.NewRecorder(activity.RecorderOptions{Client: r.Client, Prefix: r.Prefix, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range accounts {
		page, err := store.Events(ctx, id, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			if ev.Type != billing.EventUsage {
				continue
			}
			at = ev.At
			rec.Settled(activity.Request{Account: id, KeyID: ev.KeyID, RequestID: ev.RequestID, Model: ev.Model, Endpoint: ev.Endpoint,
				PromptTokens: ev.PromptTokens, CompletionTokens: ev.CompletionTokens, Cost: ev.Cost, BalanceAfter: ev.BalanceAfter})
			if err := rec.Flush(ctx); err != nil { // one at a time: each keeps its own time
				t.Fatal(err)
			}
		}
	}
	return &activity.Reader{Client: r.Client, Prefix: r.Prefix}
}

// formatUSD formats like the page does: "$1,234.500000", "-$0.300000".
func formatUSD(m money.Micros) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	s := m.String()
	whole, frac, _ := strings.Cut(s, ".")
	for i := len(whole) - 3; i > 0; i -= 3 {
		whole = whole[:i] + "," + whole[i:]
	}
	return sign + "$" + whole + "." + frac
}

// browserProblems collects what the page must never do: throw, log errors, or
// violate its Content-Security-Policy.
type browserProblems struct {
	mu   sync.Mutex
	list []string
}

func (b *browserProblems) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		b.list = append(b.list, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, text))
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.list = append(b.list, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
		}
	}
}

func (b *browserProblems) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.list...)
}

// recordCSPViolations runs before the page's own script in every document.
const recordCSPViolations = `window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));`

// TestDashboardInBrowser drives the dashboard in headless Chromium against the
// admin API on real Redis: sign in (a wrong token first), read the accounts,
// open one, check its chart against the seeded usage, top it up through the
// form and see the balance change, and create a key that then authenticates.
func TestDashboardInBrowser(t *testing.T) {
	browser := requireBrowser(t)

	clk := &clock{}
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	usd := money.MustParse
	seed := seedHistory(t, store, clk, testPolicy)
	reader := recordActivity(t, store, r, "acme", "globex", "initech")
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return testPolicy },
		Tokens: func() []string { return []string{token} }, Ready: store.Ping, Activity: reader}).Handler())
	t.Cleanup(srv.Close)

	tab := openTab(t, browser)
	ctx, problems, do, waitFor, eval, text := tab.ctx, tab.problems, tab.do, tab.waitFor, tab.eval, tab.text

	// Sign in: a wrong token is refused, the right one lists the accounts.
	do("open the page", chromedp.Navigate(srv.URL+"/dashboard/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	do("wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-admin-token-000000"), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitFor("wrong token", `document.querySelector("#login-error").textContent.includes("refused")`)
	do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitFor("accounts", `document.querySelectorAll("#accounts tr[data-account]").length === 3`)

	if got := eval(`sessionStorage.getItem("creditgate.adminToken")`); got != token {
		t.Errorf("sessionStorage holds %q", got)
	}
	if href := eval(`location.href`); strings.Contains(href, token) {
		t.Errorf("the token is in the URL: %s", href)
	}
	if got := eval(`localStorage.length + ":" + document.cookie`); got != "0:" {
		t.Errorf("the page stored something outside sessionStorage: %s", got)
	}

	// The accounts table shows what the store holds.
	for _, id := range []string{"acme", "globex", "initech"} {
		acct, err := store.GetAccount(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		row := `#accounts tr[data-account="` + id + `"] `
		for field, want := range map[string]string{
			"balance":   formatUSD(acct.Balance()),
			"debt":      formatUSD(acct.Debt),
			"reserved":  formatUSD(acct.Reserved),
			"available": formatUSD(acct.Available()),
		} {
			if got := text(row + `td[data-field="` + field + `"]`); got != want {
				t.Errorf("%s %s: page shows %q, store has %q", id, field, got, want)
			}
		}
	}
	waitFor("next expiry", `document.querySelector('#accounts tr[data-account="initech"] td[data-field="next_expiry"]').textContent.endsWith("UTC")`)
	wantExpiry := time.Now().UTC().Add(5 * 24 * time.Hour).Format("2006-01-02")
	if got := text(`#accounts tr[data-account="initech"] td[data-field="next_expiry"]`); !strings.HasPrefix(got, wantExpiry) {
		t.Errorf("initech's next expiry %q, want %s…", got, wantExpiry)
	}
	if got := text(`#accounts tr[data-account="globex"] td[data-field="debt"]`); got != "$0.300000" {
		t.Errorf("globex's debt %q", got)
	}

	// Open acme: its grants, ledger and chart.
	do("open acme", chromedp.Click(chromedp.CSS(`#accounts tr[data-account="acme"] a`)))
	waitFor("acme", `document.querySelector("#account-id").textContent === "acme" && document.querySelectorAll("#chart rect[data-model]").length > 0 &&
		document.querySelectorAll("#ledger tr[data-event]").length > 0`)
	var chart map[string]string
	if err := json.Unmarshal([]byte(eval(`(() => {
		const sums = {};
		for (const r of document.querySelectorAll("#chart rect[data-model]")) {
			sums[r.dataset.model] = ((BigInt(sums[r.dataset.model] || "0")) + BigInt(r.dataset.micros)).toString();
		}
		return JSON.stringify(sums);
	})()`)), &chart); err != nil {
		t.Fatal(err)
	}
	for model, want := range seed.spend {
		if chart[model] != fmt.Sprint(int64(want)) {
			t.Errorf("chart: %s spent %s micro-USD, seeded %d", model, chart[model], want)
		}
	}
	if len(chart) != len(seed.spend) {
		t.Errorf("chart models %v, seeded %v", chart, seed.spend)
	}
	if n := eval(`String(document.querySelectorAll("#ledger tr[data-event]").length)`); n == "0" {
		t.Error("the ledger table is empty")
	}

	// Top up through the form: the balance changes in the table and the summary.
	before, err := store.GetAccount(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := formatUSD(before.Balance() + usd("25.00"))
	do("top up", chromedp.SendKeys(chromedp.CSS("#topup-amount"), "25.00"), chromedp.Click(chromedp.CSS(`#topup-form button[type="submit"]`)))
	waitFor("new balance", `document.querySelector('#accounts tr[data-account="acme"] td[data-field="balance"]').textContent === `+jsString(want)+
		` && document.querySelector('#account-summary dd[data-field="balance"]').textContent === `+jsString(want))
	if got := text("#topup-result"); !strings.Contains(got, "Added $25.000000") {
		t.Errorf("top-up result %q", got)
	}
	after, err := store.GetAccount(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if after.Balance()-before.Balance() != usd("25.00") {
		t.Fatalf("store balance went from %s to %s", before.Balance(), after.Balance())
	}
	waitFor("top-up in the ledger", `document.querySelector("#ledger tbody tr").dataset.type === "topup"`)

	// The screenshot for the docs: the accounts, then acme with its chart and
	// forms (the first screenful), before any secret is on screen.
	do("scroll", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	shotPath := filepath.Join(t.TempDir(), "dashboard.png")
	if *updateScreenshot {
		shotPath = filepath.Join("..", "docs", "dashboard.png")
	}
	if err := os.WriteFile(shotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shotPath, len(shot))

	// Create a key: it is shown once and authenticates.
	do("create key", chromedp.SendKeys(chromedp.CSS("#key-name"), "from-the-browser"), chromedp.Click(chromedp.CSS(`#key-form button[type="submit"]`)))
	waitFor("new key", `document.querySelector("#new-key-value").textContent.startsWith("sk-cg-")`)
	secret := text("#new-key-value")
	found, err := store.LookupKey(context.Background(), billing.HashKey(secret))
	if err != nil || found.Account != "acme" || found.Name != "from-the-browser" {
		t.Fatalf("the key the page showed: %+v %v", found, err)
	}
	waitFor("key listed", `document.querySelector('#keys tr[data-key="`+found.ID+`"]') !== null`)
	if strings.Contains(text("#keys"), secret) {
		t.Error("the keys table shows the secret")
	}
	do("done with the key", chromedp.Click(chromedp.CSS("#hide-key")))
	if got := text("#new-key-value"); got != "" {
		t.Errorf("the secret stays on the page after Done: %q", got)
	}

	// A bad amount is refused with the server's reason, and nothing is credited.
	do("bad top-up", chromedp.SendKeys(chromedp.CSS("#topup-amount"), "1.00"), chromedp.Click(chromedp.CSS(`#topup-form button[type="submit"]`)))
	waitFor("refusal", `document.querySelector("#topup-result").textContent.startsWith("Not added")`)
	if final, err := store.GetAccount(context.Background(), "acme"); err != nil || final.Credit != after.Credit {
		t.Errorf("a refused top-up changed credit: %s → %s (%v)", after.Credit, final.Credit, err)
	}

	// Signing out forgets the token.
	do("sign out", chromedp.Click(chromedp.CSS("#sign-out")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if got := eval(`String(sessionStorage.getItem("creditgate.adminToken"))`); got != "null" {
		t.Errorf("after sign-out sessionStorage holds %q", got)
	}

	if v := eval(`JSON.stringify(window.__cspViolations)`); v != "[]" {
		t.Errorf("CSP violations: %s", v)
	}
	for _, p := range problems.get() {
		t.Errorf("page: %s", p)
	}
}

// tab is a headless Chromium tab and the test's helpers to drive it.
type tab struct {
	ctx      context.Context
	problems *browserProblems
	do       func(step string, actions ...chromedp.Action[chromedp.Void])
	waitFor  func(step, condition string) // polls a JavaScript condition until it holds
	eval     func(expr string) string
	text     func(css string) string
}

// openTab starts browser for the rest of the test.
func openTab(t *testing.T, browser string) *tab {
	t.Helper()
	// A bound on the whole test in case the browser hangs; not a performance check.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1160),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	problems := &browserProblems{}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(problems.listen))
	t.Cleanup(cancelTab)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordCSPViolations}); err != nil {
		noBrowser(t, fmt.Sprintf("%s did not start: %v", browser, err))
	}

	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v (page problems: %v)", step, err, problems.get())
		}
	}
	waitFor := func(step, condition string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](condition, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("%s: waiting for %s: %v (page problems: %v)", step, condition, err, problems.get())
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	text := func(css string) string {
		t.Helper()
		return eval(`(document.querySelector(` + jsString(css) + `) || {}).textContent || ""`)
	}

	return &tab{ctx: ctx, problems: problems, do: do, waitFor: waitFor, eval: eval, text: text}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
