package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
)

// TestWithPortal: /billing/ goes to the Billing page, everything else to the proxy.
func TestWithPortal(t *testing.T) {
	h := withPortal(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "proxy") }),
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "billing") }))
	for path, want := range map[string]string{
		"/billing/": "billing", "/billing": "billing", "/billing/login?token=x": "billing", "/billing/static/app.js": "billing",
		"/v1/chat/completions": "proxy", "/v1/billing/": "proxy", "/billingx": "proxy", "/": "proxy", "/healthz": "proxy",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Body.String() != want {
			t.Errorf("%s went to %s, want %s", path, rec.Body, want)
		}
	}
}

// TestBillingMounted: the data plane serves the Billing page once the store keeps
// portal sessions; until then /billing/ is the proxy's OpenAI-shaped 404.
func TestBillingMounted(t *testing.T) {
	a, _ := start(t, "")
	res, err := http.Get("http://" + a.DataAddr().String() + "/billing/login?token=unknown")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if _, ok := any(a.Store()).(billing.PortalStore); ok {
		if res.StatusCode != http.StatusGone || !strings.Contains(res.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("an unknown link: %d, CSP %q: %s", res.StatusCode, res.Header.Get("Content-Security-Policy"), body)
		}
		return
	}
	if res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("without portal sessions /billing/ should be the proxy's 404: %d %s", res.StatusCode, body)
	}
}
