package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/money"
)

// adjustTap sits in front of the admin API: it records the Idempotency-Key of
// every adjustment the page sends and, when asked, loses the answer of the next
// one (the adjustment is made, then the connection is closed without a reply).
type adjustTap struct {
	t        *testing.T
	mu       sync.Mutex
	keys     []string
	loseNext bool
}

func (a *adjustTap) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/adjustments") {
			h.ServeHTTP(w, r)
			return
		}
		a.mu.Lock()
		a.keys = append(a.keys, r.Header.Get("Idempotency-Key"))
		lose := a.loseNext
		a.loseNext = false
		a.mu.Unlock()
		if !lose {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			a.t.Errorf("losing the answer: %v", err)
			return
		}
		conn.Close()
	})
}

func (a *adjustTap) sent() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.keys...)
}

func (a *adjustTap) loseNextAnswer() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.loseNext = true
}

// TestDashboardAdjustInBrowser drives the account view's adjust form in
// headless Chromium against the admin API on real Redis, and checks the store
// after each step: a positive adjustment with an expiry credits a grant of
// source adjustment and shows in the balance, the grants and the ledger with its
// reason; a claw-back asks for confirmation (cancel sends nothing); one above
// credit − reserved shows the server's insufficient_credit message and changes
// nothing; a valid one lowers the balance; and a submission whose answer was
// lost is retried with the same Idempotency-Key and booked once.
func TestDashboardAdjustInBrowser(t *testing.T) {
	browser := requireBrowser(t)
	clk := &clock{}
	store := newRedisLedger(t, clk.now)
	usd := money.MustParse
	ctx := context.Background()
	seedHistory(t, store, clk, testPolicy)
	// A request in flight on acme: its hold is not credit a claw-back may take.
	if res, err := store.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: "req_inflight", Estimate: usd("3.00"), Minimum: usd("3.00"),
		Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL}); err != nil || !res.Admitted {
		t.Fatalf("reserve: %+v %v", res, err)
	}

	tap := &adjustTap{t: t}
	srv := httptest.NewUnstartedServer(tap.wrap((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return testPolicy },
		Tokens: func() []string { return []string{token} }, Ready: store.Ping}).Handler()))
	// A fresh connection per request: Chromium resends a request whose reused
	// connection closed without an answer, which would hide the lost answer below.
	srv.Config.SetKeepAlivesEnabled(false)
	srv.Start()
	t.Cleanup(srv.Close)

	tab := openTab(t, browser)
	do, waitFor, eval, text := tab.do, tab.waitFor, tab.eval, tab.text
	do("open the page", chromedp.Navigate(srv.URL+"/dashboard/"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)))
	waitFor("accounts", `document.querySelectorAll("#accounts tr[data-account]").length === 3`)
	do("open acme", chromedp.Click(chromedp.CSS(`#accounts tr[data-account="acme"] a`)))
	waitFor("acme", `document.querySelector("#account-id").textContent === "acme" && document.querySelectorAll("#ledger tr[data-event]").length > 0`)

	account := func() billing.Account {
		t.Helper()
		a, err := store.GetAccount(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// newEvents are the events after the snapshot a, oldest first.
	newEvents := func(a billing.Account) []billing.Event {
		t.Helper()
		page, err := store.Events(ctx, "acme", a.LastEventID, 100)
		if err != nil {
			t.Fatal(err)
		}
		return page.Events
	}
	shows := func(step string, a billing.Account) {
		t.Helper()
		waitFor(step, `document.querySelector('#account-summary dd[data-field="balance"]').textContent === `+jsString(formatUSD(a.Balance()))+
			` && document.querySelector('#account-summary dd[data-field="credit"]').textContent === `+jsString(formatUSD(a.Credit))+
			` && document.querySelector('#accounts tr[data-account="acme"] td[data-field="balance"]').textContent === `+jsString(formatUSD(a.Balance())))
	}
	fill := func(step, amount, reason string) {
		t.Helper()
		do(step, chromedp.Evaluate[chromedp.Void](`document.querySelector("#adjust-amount").value = ""; document.querySelector("#adjust-reason").value = ""`),
			chromedp.SendKeys(chromedp.CSS("#adjust-amount"), amount), chromedp.SendKeys(chromedp.CSS("#adjust-reason"), reason))
	}
	submit := func(step string) {
		t.Helper()
		do(step, chromedp.Click(chromedp.CSS(`#adjust-form button[type="submit"]`)))
	}
	topRow := func(step, eventID, amount, note string) {
		t.Helper()
		row := `document.querySelector("#ledger tbody tr")`
		waitFor(step, row+`.dataset.event === `+jsString(eventID)+` && `+row+`.dataset.type === "adjustment" && `+
			row+`.querySelector('td[data-field="amount"]').textContent === `+jsString(amount)+` && `+
			row+`.querySelector("td.details").textContent.includes(`+jsString("note="+note)+`)`)
	}

	// A positive adjustment with an expiry: a grant of source adjustment.
	start := account()
	expiry := time.Now().UTC().AddDate(1, 0, 0).Format(time.DateOnly)
	const goodwill = "goodwill for the outage of 3 March"
	fill("positive", "2.50", goodwill)
	do("expiry", chromedp.SetValue(chromedp.CSS("#adjust-expires"), expiry))
	submit("positive")
	waitFor("positive done", `document.querySelector("#adjust-result").textContent.startsWith("Adjusted by $2.500000")`)
	afterPlus := account()
	if afterPlus.Credit != start.Credit+usd("2.50") || afterPlus.Debt != start.Debt || afterPlus.Totals.Granted != start.Totals.Granted+usd("2.50") {
		t.Fatalf("after +2.50: credit %s → %s, debt %s → %s, granted %s → %s", start.Credit, afterPlus.Credit, start.Debt, afterPlus.Debt,
			start.Totals.Granted, afterPlus.Totals.Granted)
	}
	evs := newEvents(start)
	if len(evs) != 1 || evs[0].Type != billing.EventAdjustment || evs[0].Amount != usd("2.50") || evs[0].Note != goodwill || evs[0].GrantID == "" {
		t.Fatalf("events after +2.50: %+v", evs)
	}
	var grant *billing.Grant
	for i, g := range afterPlus.Grants {
		if g.ID == evs[0].GrantID {
			grant = &afterPlus.Grants[i]
		}
	}
	if grant == nil || grant.Source != billing.SourceAdjustment || grant.Amount != usd("2.50") || grant.ExpiresAt.Format(time.RFC3339) != expiry+"T00:00:00Z" {
		t.Fatalf("the adjustment's grant %s: %+v", evs[0].GrantID, grant)
	}
	if !strings.Contains(text("#adjust-result"), grant.ID) {
		t.Errorf("the result does not name the grant %s: %q", grant.ID, text("#adjust-result"))
	}
	shows("balance after +2.50", afterPlus)
	topRow("+2.50 in the ledger", evs[0].ID, "$2.500000", goodwill)
	waitFor("the grant listed", `(() => { const tr = document.querySelector('#grants tr[data-grant=`+jsString(grant.ID)+`]');
		return tr !== null && tr.children[1].textContent === "adjustment" && tr.children[5].textContent.startsWith(`+jsString(expiry)+`); })()`)
	if got := eval(`document.querySelector("#adjust-amount").value + "|" + document.querySelector("#adjust-reason").value`); got != "|" {
		t.Errorf("the form keeps %q after success", got)
	}

	// A negative amount turns the expiry off and asks first; cancel sends nothing.
	fill("claw-back to cancel", "-1.00", "cancelled")
	if got := eval(`String(document.querySelector("#adjust-expires").disabled)`); got != "true" {
		t.Errorf("the expiry field is enabled for a negative amount: %s", got)
	}
	submit("claw-back to cancel")
	waitFor("question", `!document.querySelector("#adjust-confirm").hidden`)
	if got := text("#adjust-confirm-text"); got != "Take back $1.000000 from acme?" {
		t.Errorf("confirmation %q", got)
	}
	do("cancel", chromedp.Click(chromedp.CSS("#adjust-confirm-no")))
	waitFor("no question", `document.querySelector("#adjust-confirm").hidden`)

	// A claw-back above credit − reserved: the server's message, and no change.
	before := account()
	available := before.Credit - before.Reserved
	tooMuch := available + usd("0.01")
	if before.Reserved != usd("3.00") {
		t.Fatalf("reserved %s, want the hold's 3.00", before.Reserved)
	}
	fill("too much", "-"+tooMuch.String(), "taking too much")
	submit("too much")
	waitFor("question", `!document.querySelector("#adjust-confirm").hidden`)
	if got, want := text("#adjust-confirm-text"), "Take back "+formatUSD(tooMuch)+" from acme?"; got != want {
		t.Errorf("confirmation %q, want %q", got, want)
	}
	do("confirm too much", chromedp.Click(chromedp.CSS("#adjust-confirm-yes")))
	waitFor("refusal", `document.querySelector("#adjust-result").textContent.startsWith("Not adjusted")`)
	serverMsg := (&billing.InsufficientCreditError{Amount: tooMuch, Available: available, Credit: before.Credit, Reserved: before.Reserved}).Error()
	if got := text("#adjust-result"); !strings.Contains(got, serverMsg) || !strings.Contains(eval(`document.querySelector("#adjust-result").className`), "error") {
		t.Errorf("refusal %q, want the server's %q shown as an error", got, serverMsg)
	}
	if got := eval(`document.querySelector("#adjust-amount").value`); got != "-"+tooMuch.String() {
		t.Errorf("the refused amount was cleared: %q", got)
	}
	after := account()
	if after.Credit != before.Credit || after.Debt != before.Debt || after.Totals != before.Totals || after.LastEventID != before.LastEventID {
		t.Fatalf("a refused claw-back changed the account: credit %s → %s, totals %+v → %+v, last event %s → %s",
			before.Credit, after.Credit, before.Totals, after.Totals, before.LastEventID, after.LastEventID)
	}

	// A claw-back within what is available, confirmed: the balance goes down.
	const refund = "refund of req_seed_3 billed twice"
	fill("claw-back", "-1.25", refund)
	submit("claw-back")
	waitFor("question", `!document.querySelector("#adjust-confirm").hidden`)
	if got := text("#adjust-confirm-text"); got != "Take back $1.250000 from acme?" {
		t.Errorf("confirmation %q", got)
	}
	do("confirm", chromedp.Click(chromedp.CSS("#adjust-confirm-yes")))
	waitFor("claw-back done", `document.querySelector("#adjust-result").textContent.startsWith("Adjusted by -$1.250000")`)
	afterMinus := account()
	if afterMinus.Credit != before.Credit-usd("1.25") || afterMinus.Debt != before.Debt ||
		afterMinus.Totals.AdjustedOut != before.Totals.AdjustedOut+usd("1.25") || afterMinus.Totals.Granted != before.Totals.Granted {
		t.Fatalf("after -1.25: credit %s → %s, totals %+v → %+v", before.Credit, afterMinus.Credit, before.Totals, afterMinus.Totals)
	}
	evs = newEvents(before)
	if len(evs) != 1 || evs[0].Type != billing.EventAdjustment || evs[0].Amount != -usd("1.25") || evs[0].Note != refund || evs[0].GrantID != "" {
		t.Fatalf("events after -1.25: %+v", evs)
	}
	shows("balance after -1.25", afterMinus)
	topRow("-1.25 in the ledger", evs[0].ID, "-$1.250000", refund)

	// The answer of a submission is lost: the page says so and keeps the key, so
	// submitting again replays the adjustment instead of making a second one.
	tap.loseNextAnswer()
	const lost = "answer lost on the way back"
	fill("lost answer", "0.75", lost)
	submit("lost answer")
	waitFor("network error", `document.querySelector("#adjust-result").textContent.startsWith("Not adjusted: cannot reach the admin API")`)
	submit("retry")
	waitFor("replayed", `document.querySelector("#adjust-result").textContent.startsWith("Already adjusted by $0.750000")`)
	afterRetry := account()
	evs = newEvents(afterMinus)
	if afterRetry.Credit != afterMinus.Credit+usd("0.75") || len(evs) != 1 || evs[0].Amount != usd("0.75") || evs[0].Note != lost {
		t.Fatalf("after a retried +0.75: credit %s → %s, events %+v", afterMinus.Credit, afterRetry.Credit, evs)
	}
	shows("balance after the retry", afterRetry)
	topRow("+0.75 in the ledger", evs[0].ID, "$0.750000", lost)

	// One key per submission, the same one for the retry; cancel sent nothing.
	keys := tap.sent()
	if len(keys) != 5 {
		t.Fatalf("the page sent %d adjustments (keys %q), want 5", len(keys), keys)
	}
	if keys[3] != keys[4] {
		t.Errorf("the retry after a lost answer used key %q, the first try %q", keys[4], keys[3])
	}
	seen := map[string]bool{}
	for _, k := range keys[:4] {
		if k == "" || seen[k] {
			t.Errorf("keys %q: want a fresh, non-empty key per submission", keys)
			break
		}
		seen[k] = true
	}

	// The account still balances: every adjustment is booked exactly once.
	assertAudited(t, store, "acme")
	if v := eval(`JSON.stringify(window.__cspViolations)`); v != "[]" {
		t.Errorf("CSP violations: %s", v)
	}
	for _, p := range tab.problems.get() {
		t.Errorf("page: %s", p)
	}
}

func assertAudited(t *testing.T, store *redisstore.Store, account string) {
	t.Helper()
	rep, err := billing.AuditAccount(context.Background(), store, account)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("audit of %s: %+v", account, rep.Problems)
	}
}
