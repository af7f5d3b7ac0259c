// Package browser drives headless Chromium for the browser tests (chromedp):
// Require finds the browser (CREDITGATE_TEST_BROWSER, else chromium and its
// kin on PATH) or skips the test through skipreport (failing it when CI
// requires a browser), and Open starts a tab with helpers that fail the test
// with the page's own problems (exceptions, console errors, CSP violations)
// attached.
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/creditgate/creditgate/internal/testing/skipreport"
)

// EnvBrowser is the path of the browser to use, overriding the search.
const EnvBrowser = "CREDITGATE_TEST_BROWSER"

// names are the executables searched for on PATH, in order.
var names = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome-headless-shell"}

// Find returns the browser to drive, or "".
func Find() string {
	if p := os.Getenv(EnvBrowser); p != "" {
		return p
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Require returns the browser for test (a description such as "the dashboard's
// browser test"), or skips t through skipreport when there is none, so the run
// says so (or fails under CREDITGATE_TEST_REQUIRE_BROWSER=1, which CI sets).
func Require(t testing.TB, test string) string {
	t.Helper()
	p := Find()
	if p == "" {
		Unavailable(t, test, "no Chromium found ("+EnvBrowser+", or chromium, chromium-browser, google-chrome on PATH)")
	}
	return p
}

// Unavailable skips t, reporting why the browser cannot be used (it did not
// start, say).
func Unavailable(t testing.TB, test, why string) {
	t.Helper()
	skipreport.Skip(t, skipreport.Browser, fmt.Sprintf("%s: %s not run", why, test))
}

// problems collects what a page must never do: throw, log errors or warnings.
type problems struct {
	mu   sync.Mutex
	list []string
}

func (b *problems) listen(ev any) {
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

func (b *problems) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.list...)
}

// recordCSPViolations runs before the page's own script in every document.
const recordCSPViolations = `window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));`

// Tab is a headless Chromium tab and the test's helpers to drive it.
type Tab struct {
	t        testing.TB
	Ctx      context.Context
	problems *problems
}

// Open starts browser with a window of width×height for the rest of the test.
func Open(t testing.TB, browser string, width, height int) *Tab {
	t.Helper()
	// A bound on the whole test in case the browser hangs; not a performance check.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	p := &problems{}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(p.listen))
	t.Cleanup(cancelTab)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordCSPViolations}); err != nil {
		Unavailable(t, "this browser test", fmt.Sprintf("%s did not start: %v", browser, err))
	}
	return &Tab{t: t, Ctx: ctx, problems: p}
}

// Problems are the page's exceptions and console errors so far.
func (tb *Tab) Problems() []string { return tb.problems.get() }

// Do runs actions, failing the test on error.
func (tb *Tab) Do(step string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.Ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v (page problems: %v)", step, err, tb.Problems())
	}
}

// WaitFor polls a JavaScript condition until it holds (20 s at most). A
// navigation under way (a form post, a redirect) restarts the poll in the new
// document.
func (tb *Tab) WaitFor(step, condition string) {
	tb.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := chromedp.Run(tb.Ctx, chromedp.Poll[bool](condition, chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return
		}
		if navigating(err) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		tb.t.Fatalf("%s: waiting for %s: %v (page problems: %v; at %s)", step, condition, err, tb.Problems(), tb.Eval(`location.href`))
	}
}

// navigating: the document went away under a script (a navigation).
func navigating(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "navigated or closed") || strings.Contains(msg, "Cannot find context") ||
		strings.Contains(msg, "Execution context was destroyed")
}

// Eval evaluates a JavaScript expression whose value is a string.
func (tb *Tab) Eval(expr string) string {
	tb.t.Helper()
	v, err := chromedp.Run(tb.Ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// Text is the text content of the first element matching css ("" if none).
func (tb *Tab) Text(css string) string {
	tb.t.Helper()
	return tb.Eval(`(document.querySelector(` + JSString(css) + `) || {}).textContent || ""`)
}

// Screenshot captures the viewport (full: the whole page) as PNG.
func (tb *Tab) Screenshot(full bool) []byte {
	tb.t.Helper()
	var shot []byte
	var err error
	if full {
		shot, err = chromedp.Run(tb.Ctx, chromedp.FullScreenshot(100))
	} else {
		shot, err = chromedp.Run(tb.Ctx, chromedp.CaptureScreenshot())
	}
	if err != nil {
		tb.t.Fatal(err)
	}
	return shot
}

// CheckClean fails the test for CSP violations and page problems so far.
func (tb *Tab) CheckClean() {
	tb.t.Helper()
	if v := tb.Eval(`JSON.stringify(window.__cspViolations || [])`); v != "[]" {
		tb.t.Errorf("CSP violations: %s", v)
	}
	for _, p := range tb.Problems() {
		tb.t.Errorf("page: %s", p)
	}
}

// JSString quotes s as a JavaScript string literal.
func JSString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
