package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/admin"
)

// TestWithProbes: GET and HEAD of /healthz and /readyz are answered by the
// probes; every other request, other methods on those paths included, goes on
// to the data handler.
func TestWithProbes(t *testing.T) {
	notReady := errors.New("redis: connection refused")
	ready := func(context.Context) error { return nil }
	tests := []struct {
		method, path string
		ready        func(context.Context) error
		wantStatus   int
		wantBody     string // "next": the data handler answered
	}{
		{"GET", "/healthz", ready, 200, `{"status":"ok"}`},
		{"HEAD", "/healthz", ready, 200, `{"status":"ok"}`},
		{"GET", "/readyz", ready, 200, `{"status":"ready"}`},
		{"GET", "/readyz", func(context.Context) error { return notReady }, 503, `{"status":"unavailable","reason":"redis: connection refused"}`},
		{"GET", "/healthz", func(context.Context) error { return notReady }, 200, `{"status":"ok"}`},
		{"POST", "/readyz", ready, 200, "next"},
		{"DELETE", "/healthz", ready, 200, "next"},
		{"GET", "/healthz/", ready, 200, "next"},
		{"GET", "/v1/healthz", ready, 200, "next"},
		{"GET", "/readyzz", ready, 200, "next"},
		{"GET", "/v1/chat/completions", ready, 200, "next"},
		{"GET", "/billing/", ready, 200, "next"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "next") })
			h := withProbes(next, admin.Probes{Ready: tt.ready})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != tt.wantBody {
				t.Errorf("body %q, want %q", got, tt.wantBody)
			}
			if tt.wantBody != "next" && rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", rec.Header().Get("Cache-Control"))
			}
		})
	}
}

// get fetches url and returns its status and body.
func get(t *testing.T, url string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(body)
}

// TestDataPlaneProbes: a running instance answers the probes on its data plane
// without a key, readiness follows the store and the drain, and the proxy's 404,
// the Billing page and the demo checkout still route.
func TestDataPlaneProbes(t *testing.T) {
	a, _ := start(t, "payments: { provider: demo }\n")
	data := "http://" + a.DataAddr().String()

	if status, _, body := get(t, data+"/healthz"); status != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("/healthz: %d %s", status, body)
	}
	if status, _, body := get(t, data+"/readyz"); status != 200 || strings.TrimSpace(body) != `{"status":"ready"}` {
		t.Errorf("/readyz: %d %s", status, body)
	}
	// An app key is not needed, and a wrong one changes nothing.
	if status, _, body := get(t, data+"/readyz", "Authorization", "Bearer sk-cg-wrong"); status != 200 {
		t.Errorf("/readyz with a wrong key: %d %s", status, body)
	}

	// What the proxy does not serve is still its OpenAI-shaped 404.
	for _, path := range []string{"/v1/not-an-endpoint", "/healthz/extra", "/"} {
		status, _, body := get(t, data+path)
		var e struct {
			Error struct{ Type, Code string }
		}
		if status != http.StatusNotFound || json.Unmarshal([]byte(body), &e) != nil || e.Error.Type == "" {
			t.Errorf("%s: %d %s; want the proxy's 404 in OpenAI's shape", path, status, body)
		}
	}
	// The Billing page and the demo checkout are still mounted.
	if status, hdr, body := get(t, data+"/billing/login?token=unknown"); status != http.StatusGone || hdr.Get("Content-Security-Policy") == "" {
		t.Errorf("/billing/login: %d (CSP %q) %s; want the Billing page's 410", status, hdr.Get("Content-Security-Policy"), body)
	}
	if a.DemoCheckout() == nil {
		t.Fatal("payments.provider demo, but no demo checkout")
	}

	// Draining: not ready, while /healthz still says the process lives.
	a.draining.Store(true)
	status, _, body := get(t, data+"/readyz")
	a.draining.Store(false)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while draining: %d %s", status, body)
	}
	if status, _, _ := get(t, "http://"+a.AdminAddr().String()+"/readyz"); status != 200 {
		t.Errorf("admin /readyz after the drain flag cleared: %d", status)
	}
}

// TestMetricsListener: metrics.listen serves /metrics and nothing else; the
// admin listener keeps serving it too. Without metrics.listen there is no
// listener.
func TestMetricsListener(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		a, _ := start(t, "")
		if addr := a.MetricsAddr(); addr != nil {
			t.Errorf("MetricsAddr() = %v without metrics.listen", addr)
		}
	})
	t.Run("on its own port", func(t *testing.T) {
		a, _ := start(t, "metrics: { listen: \"127.0.0.1:0\" }\n")
		addr := a.MetricsAddr()
		if addr == nil || addr.String() == a.AdminAddr().String() || addr.String() == a.DataAddr().String() {
			t.Fatalf("MetricsAddr() = %v (admin %v, data %v)", addr, a.AdminAddr(), a.DataAddr())
		}
		base := "http://" + addr.String()
		status, hdr, body := get(t, base+"/metrics")
		if status != 200 || !strings.Contains(body, "creditgate_quota_exceeded_total") || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
			t.Errorf("/metrics: %d %q, %.200s", status, hdr.Get("Content-Type"), body)
		}
		for _, path := range []string{"/healthz", "/admin/v1/accounts", "/dashboard/", "/v1/models", "/metrics/x"} {
			if status, _, body := get(t, base+path, "Authorization", "Bearer "+adminToken); status != http.StatusNotFound {
				t.Errorf("metrics listener %s: %d %.100s; want 404", path, status, body)
			}
		}
		if status, _, _ := get(t, "http://"+a.AdminAddr().String()+"/metrics"); status != 200 {
			t.Errorf("admin /metrics: %d", status)
		}
	})
}
