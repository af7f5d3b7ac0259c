package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

func TestCORS(t *testing.T) {
	const app = "https://app.example.com"
	exact := newHarness(t, func(o *Options) {
		o.CORS = CORS{AllowedOrigins: []string{app, "http://localhost:5173"}, AllowCredentials: true, MaxAge: 10 * time.Minute}
	})
	anyOrigin := newHarness(t, func(o *Options) { o.CORS = CORS{AllowedOrigins: []string{"*"}, MaxAge: time.Hour} })
	none := newHarness(t)
	keys := map[*harness]string{exact: exact.account("acme", "5.00"), anyOrigin: anyOrigin.account("acme", "5.00"), none: none.account("acme", "5.00")}

	preflight := func(h *harness, origin, method, headers string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, h.server.URL+"/v1/chat/completions", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		req.Header.Set("Access-Control-Request-Method", method)
		if headers != "" {
			req.Header.Set("Access-Control-Request-Headers", headers)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, res)
		return res
	}
	sdkHeaders := "authorization, content-type, x-stainless-lang, x-stainless-package-version, x-stainless-os, x-stainless-arch, x-stainless-runtime, x-stainless-runtime-version, x-stainless-retry-count, x-stainless-timeout, openai-beta"

	for _, tc := range []struct {
		name            string
		h               *harness
		origin, method  string
		headers         string
		status          int
		allowOrigin     string
		credentials     bool
		maxAge          string
		allowHeadersHas string
	}{
		{"an allowed origin, the SDK's headers", exact, app, "POST", sdkHeaders, http.StatusNoContent, app, true, "600", "x-stainless-retry-count"},
		{"the other allowed origin", exact, "http://localhost:5173", "GET", "authorization", http.StatusNoContent, "http://localhost:5173", true, "600", "authorization"},
		{"an unknown origin", exact, "https://evil.example", "POST", "authorization", http.StatusForbidden, "", false, "", ""},
		{"no origin", exact, "", "POST", "authorization", http.StatusForbidden, "", false, "", ""},
		{"a method not served", exact, app, "PUT", "", http.StatusForbidden, "", false, "", ""},
		{"a header not allowed", exact, app, "POST", "authorization, x-evil", http.StatusForbidden, "", false, "", ""},
		{"any origin: no credentials", anyOrigin, "https://anyone.example", "POST", sdkHeaders, http.StatusNoContent, "*", false, "3600", "openai-beta"},
		{"no CORS configured", none, app, "POST", "authorization", http.StatusNotFound, "", false, "", ""},
	} {
		t.Run("preflight: "+tc.name, func(t *testing.T) {
			res := preflight(tc.h, tc.origin, tc.method, tc.headers)
			h := res.Header
			if res.StatusCode != tc.status || h.Get("Access-Control-Allow-Origin") != tc.allowOrigin ||
				(h.Get("Access-Control-Allow-Credentials") == "true") != tc.credentials || h.Get("Access-Control-Max-Age") != tc.maxAge ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), tc.allowHeadersHas) {
				t.Fatalf("%d %v", res.StatusCode, h)
			}
			if tc.status == http.StatusNoContent && (!strings.Contains(h.Get("Access-Control-Allow-Methods"), tc.method) || !slices.Contains(h.Values("Vary"), "Origin")) {
				t.Fatalf("methods %q, vary %v", h.Get("Access-Control-Allow-Methods"), h.Values("Vary"))
			}
		})
	}

	simple := func(h *harness, origin, key string) *http.Response {
		t.Helper()
		res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""), "Origin", origin)
		readAll(t, res)
		return res
	}
	for _, tc := range []struct {
		name        string
		h           *harness
		origin, key string
		status      int
		allowOrigin string
		credentials bool
	}{
		{"an allowed origin", exact, app, keys[exact], http.StatusOK, app, true},
		{"an allowed origin, a 401 readable too", exact, app, "sk-cg-nope", http.StatusUnauthorized, app, true},
		{"an unknown origin: served, unreadable by the page", exact, "https://evil.example", keys[exact], http.StatusOK, "", false},
		{"any origin", anyOrigin, "https://anyone.example", keys[anyOrigin], http.StatusOK, "*", false},
		{"no CORS configured", none, app, keys[none], http.StatusOK, "", false},
	} {
		t.Run("request: "+tc.name, func(t *testing.T) {
			res := simple(tc.h, tc.origin, tc.key)
			h := res.Header
			if res.StatusCode != tc.status || h.Get("Access-Control-Allow-Origin") != tc.allowOrigin || (h.Get("Access-Control-Allow-Credentials") == "true") != tc.credentials {
				t.Fatalf("%d %v", res.StatusCode, h)
			}
			if tc.allowOrigin != "" && !strings.Contains(h.Get("Access-Control-Expose-Headers"), "X-Creditgate-Request-Id") {
				t.Fatalf("exposed headers %q", h.Get("Access-Control-Expose-Headers"))
			}
			if tc.h != none && !slices.Contains(h.Values("Vary"), "Origin") {
				t.Fatalf("no Vary: Origin: %v", h.Values("Vary"))
			}
			if len(h.Values("Access-Control-Allow-Origin")) > 1 {
				t.Fatalf("two Access-Control-Allow-Origin: %v", h.Values("Access-Control-Allow-Origin"))
			}
		})
	}
}

// The upstream's own Access-Control-* headers are dropped: they describe its
// policy, not the gateway's.
func TestCORSUpstreamHeadersDropped(t *testing.T) {
	mock := mockupstream.New()
	mock.APIKey = upstreamKey
	permissive := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(permissive.Close)
	h := newHarness(t, func(o *Options) {
		o.CORS = CORS{AllowedOrigins: []string{"https://app.example.com"}}
		o.Upstream, _ = url.Parse(permissive.URL + "/v1")
	})
	key := h.account("acme", "5.00")
	for _, origin := range []string{"https://app.example.com", "https://evil.example"} {
		res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""), "Origin", origin)
		readAll(t, res)
		want := ""
		if origin == "https://app.example.com" {
			want = origin
		}
		if got := res.Header.Values("Access-Control-Allow-Origin"); res.StatusCode != http.StatusOK || strings.Join(got, ",") != want || res.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("%s: %d %v", origin, res.StatusCode, res.Header)
		}
	}
}
