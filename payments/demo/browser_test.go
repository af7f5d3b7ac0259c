package demo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/internal/testing/browser"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

// requireBrowser returns the Chromium to drive, or skips t (fails it when a
// browser is required).
func requireBrowser(t *testing.T) string {
	t.Helper()
	return browser.Require(t, "the demo checkout's browser test")
}

func noBrowser(t *testing.T, why string) {
	t.Helper()
	browser.Unavailable(t, "the demo checkout's browser test", why)
}

// recordCSPViolations runs before the page's own content in every document.
const recordCSPViolations = `window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));`

// TestDemoCheckoutInBrowser drives the demo checkout in headless Chromium: the
// page shows the amount and says nobody is charged, under its CSP with no
// violation; Pay fires OnPaid once with the purchase and lands on the success URL
// (another origin, which the CSP's form-action must allow for the redirect);
// posts without the right token are refused; a second post shows the purchase
// paid without firing OnPaid again.
func TestDemoCheckoutInBrowser(t *testing.T) {
	browser := requireBrowser(t)
	f := newFixture(t)
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Billing</title><h1 id="thanks">Thanks: %s</h1>`, r.URL.Query().Get("paid"))
	}))
	t.Cleanup(shop.Close)
	cs, err := f.p.StartCheckout(context.Background(), payments.Checkout{
		PurchaseID: "pur_browser", Account: "acme", Amount: money.MustParse("10.00"), SaveCard: true,
		SuccessURL: shop.URL + "/billing/?paid={CHECKOUT_SESSION_ID}", CancelURL: shop.URL + "/billing/",
	})
	if err != nil {
		t.Fatal(err)
	}

	ctx, problems := openTab(t, browser)
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v (page problems: %v)", step, err, problems.get())
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
	waitFor := func(step, condition string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](condition, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("%s: waiting for %s: %v (page problems: %v)", step, condition, err, problems.get())
		}
	}
	text := func(css string) string {
		t.Helper()
		b, _ := json.Marshal(css)
		return eval(`(document.querySelector(` + string(b) + `) || {}).textContent || ""`)
	}

	run("open the checkout", chromedp.Navigate(cs.URL), chromedp.WaitVisible(chromedp.CSS("#pay")))
	if got := text("#amount"); got != "$10.00" {
		t.Errorf("amount %q, want $10.00", got)
	}
	if got := text("#demo-notice"); !strings.Contains(got, "nobody is charged") {
		t.Errorf("notice %q does not say nobody is charged", got)
	}
	if got := text("#pay"); got != "Pay $10.00" {
		t.Errorf("button %q", got)
	}
	if got := text("#save-card"); !strings.Contains(got, "•••• 4242") {
		t.Errorf("save-card note %q", got)
	}
	if got := eval(`getComputedStyle(document.querySelector("#pay")).borderRadius`); got != "6px" {
		t.Errorf("the inline stylesheet did not apply (border-radius %q): its CSP hash is wrong", got)
	}
	if v := eval(`JSON.stringify(window.__cspViolations)`); v != "[]" {
		t.Errorf("CSP violations on the checkout page: %s", v)
	}
	if n := len(f.paidEvents()); n != 0 {
		t.Fatalf("OnPaid called %d times before Pay", n)
	}

	run("pay", chromedp.Click(chromedp.CSS("#pay")))
	landed, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = chromedp.Do(landed, chromedp.WaitVisible(chromedp.CSS("#thanks")))
	cancel()
	if err != nil {
		t.Fatalf("no success page after Pay: %v (CSP violations: %s; page problems: %v)", err, eval(`JSON.stringify(window.__cspViolations)`), problems.get())
	}
	waitFor("the success page", `location.href.startsWith(`+jsString(shop.URL+"/billing/")+`)`)
	if got := text("#thanks"); got != "Thanks: "+cs.ID {
		t.Errorf("success page says %q, want the session id %s", got, cs.ID)
	}
	paid := f.paidEvents()
	if len(paid) != 1 || paid[0].Kind != payments.CheckoutPaid || paid[0].PurchaseID != "pur_browser" || paid[0].Account != "acme" ||
		paid[0].Amount != 10*money.Dollar || paid[0].CustomerID != cs.CustomerID || paid[0].PaymentMethodID == "" {
		t.Fatalf("OnPaid got %+v, want one CheckoutPaid of pur_browser", paid)
	}

	// The form's token is its CSRF protection: posts without it, or with another,
	// are refused and fire nothing; the right one again shows the purchase paid.
	target, token := formURL(t, cs.URL)
	for _, form := range []url.Values{{}, {"token": {"forged" + token}}} {
		if status, _, _ := f.do(t, http.MethodPost, target, form); status != http.StatusForbidden {
			t.Errorf("post %v: %d, want 403", form, status)
		}
	}
	if status, body, _ := f.do(t, http.MethodPost, target, url.Values{"token": {token}}); status != 200 || !strings.Contains(body, `id="paid"`) {
		t.Errorf("second post: %d %s", status, body)
	}
	if n := len(f.paidEvents()); n != 1 {
		t.Errorf("OnPaid called %d times in all, want once", n)
	}

	run("open the checkout again", chromedp.Navigate(cs.URL), chromedp.WaitVisible(chromedp.CSS("#paid")))
	if eval(`String(!!document.querySelector("#pay"))`) != "false" {
		t.Error("a paid checkout still offers Pay")
	}
	if p := problems.get(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// openTab starts browser for the rest of the test.
func openTab(t *testing.T, browser string) (context.Context, *browserProblems) {
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
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	problems := &browserProblems{}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(problems.listen))
	t.Cleanup(cancelTab)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordCSPViolations}); err != nil {
		noBrowser(t, fmt.Sprintf("%s did not start: %v", browser, err))
	}
	return ctx, problems
}

// browserProblems collects what the page must never do: throw or log errors.
type browserProblems struct {
	mu   sync.Mutex
	list []string
}

func (b *browserProblems) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		b.list = append(b.list, "exception: "+ev.ExceptionDetails.Text)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			b.list = append(b.list, fmt.Sprintf("console.%s", ev.Type))
		}
	}
}

func (b *browserProblems) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.list...)
}
