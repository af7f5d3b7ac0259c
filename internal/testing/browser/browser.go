// Package browser finds the headless Chromium that browser tests drive (with
// chromedp): CREDITGATE_TEST_BROWSER, else the first of chromium,
// chromium-browser, google-chrome, google-chrome-stable and
// chrome-headless-shell on PATH. Without one a test is skipped through
// skipreport, so the run says so (or fails under CREDITGATE_TEST_REQUIRE_BROWSER=1,
// which CI sets after .ci/install-browser).
package browser

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

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
// browser test"), or skips t when there is none.
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
