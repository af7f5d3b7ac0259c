package admin

import (
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardFiles: the page and its assets are served without a token (they
// hold no account data: the fakes fail any store call), with a strict CSP.
func TestDashboardFiles(t *testing.T) {
	h := newTestServer(nil, nil).Handler()
	tests := []struct {
		method, path string
		status       int
		contentType  string
		contains     string
	}{
		{"GET", "/dashboard/", 200, "text/html; charset=utf-8", `<script src="app.js" defer></script>`},
		{"GET", "/dashboard/index.html", 200, "text/html; charset=utf-8", `id="login-form"`},
		{"GET", "/dashboard/app.js", 200, "text/javascript; charset=utf-8", `"use strict"`},
		{"GET", "/dashboard/app.css", 200, "text/css; charset=utf-8", `.chart`},
		{"GET", "/dashboard/favicon.svg", 200, "image/svg+xml", `<svg`},
		{"HEAD", "/dashboard/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/dashboard/missing.js", 404, "", "404 page not found"},
		{"GET", "/dashboard/dashboard/app.js", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := call(t, h, tc.method, tc.path, "", "Authorization", "<none>")
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			if tc.contains != "" && !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			if tc.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD answered a body of %d bytes", rec.Body.Len())
			}
			if tc.status != 200 {
				return
			}
			if got := rec.Header().Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			csp := rec.Header().Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			for _, banned := range []string{"unsafe-inline", "unsafe-eval", "*", "data:", "http:"} {
				if strings.Contains(csp, banned) {
					t.Errorf("CSP %q allows %q", csp, banned)
				}
			}
			for name, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"} {
				if got := rec.Header().Get(name); got != want {
					t.Errorf("%s %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestDashboardRedirectAndRevalidation(t *testing.T) {
	h := newTestServer(nil, nil).Handler()
	rec := call(t, h, "GET", "/dashboard", "", "Authorization", "<none>")
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/dashboard/" {
		t.Fatalf("/dashboard: %d Location %q", rec.Code, rec.Header().Get("Location"))
	}
	first := call(t, h, "GET", "/dashboard/app.js", "", "Authorization", "<none>")
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	for _, tc := range []struct {
		ifNoneMatch string
		status      int
	}{
		{etag, http.StatusNotModified},
		{`"stale", ` + etag, http.StatusNotModified},
		{"W/" + etag, http.StatusNotModified},
		{`"stale"`, http.StatusOK},
	} {
		rec := call(t, h, "GET", "/dashboard/app.js", "", "Authorization", "<none>", "If-None-Match", tc.ifNoneMatch)
		if rec.Code != tc.status {
			t.Errorf("If-None-Match %s: %d, want %d", tc.ifNoneMatch, rec.Code, tc.status)
		}
	}
}

// TestDashboardLeavesTheAPIClosed: making the page public opens nothing else.
func TestDashboardLeavesTheAPIClosed(t *testing.T) {
	h := newTestServer(nil, nil).Handler()
	for _, path := range []string{"/admin/v1/accounts", "/dashboardx", "/dashboard.js", "/"} {
		rec := call(t, h, "GET", path, "", "Authorization", "<none>")
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, rec.Code)
		}
	}
	for _, method := range []string{"POST", "PUT", "DELETE"} {
		rec := call(t, h, method, "/dashboard/", "", "Authorization", "<none>")
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s /dashboard/ without a token: %d, want 401", method, rec.Code)
		}
	}
}

// TestDashboardSourceRules checks the embedded files against the rules the CSP
// and the security model rely on, so a later edit cannot quietly break them.
func TestDashboardSourceRules(t *testing.T) {
	html := string(dashboardAssets["index.html"].body)
	js := string(dashboardAssets["app.js"].body)
	if html == "" || js == "" {
		t.Fatal("dashboard files are not embedded")
	}
	forbidden := []struct {
		file, text string
		re         *regexp.Regexp
		why        string
	}{
		{"index.html", html, regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), "inline script (blocked by the CSP)"},
		{"index.html", html, regexp.MustCompile(`<script\b[^>]*>`), ""}, // checked below: each needs src
		{"index.html", html, regexp.MustCompile(`(?i)\son[a-z]+\s*=`), "inline event handler"},
		{"index.html", html, regexp.MustCompile(`(?i)\sstyle\s*=|<style`), "inline style (blocked by the CSP)"},
		{"index.html", html, regexp.MustCompile(`(?i)javascript:`), "javascript: URL"},
		{"index.html", html, regexp.MustCompile(`(?i)https?://`), "a resource from elsewhere"},
		{"app.js", js, regexp.MustCompile(`\.(inner|outer)HTML|insertAdjacentHTML|document\.write`), "HTML built from strings (XSS risk)"},
		{"app.js", js, regexp.MustCompile(`\beval\(|new Function|setTimeout\(\s*["']`), "code from strings (blocked by the CSP)"},
		{"app.js", js, regexp.MustCompile(`localStorage|document\.cookie`), "the token must live in sessionStorage only"},
		{"app.js", js, regexp.MustCompile(`(?i)[?&]token=|access_token`), "the token must never be in a URL"},
		{"app.js", js, regexp.MustCompile(`setAttribute\(\s*["']style|\.style\.`), "inline style"},
		{"app.js", strings.ReplaceAll(js, `"http://www.w3.org/2000/svg"`, ""), regexp.MustCompile(`https?://[a-z]`), "a call to another origin"},
	}
	for _, f := range forbidden {
		if f.why == "" {
			for _, tag := range f.re.FindAllString(f.text, -1) {
				if !strings.Contains(tag, ` src="`) {
					t.Errorf("%s: script tag without src: %s", f.file, tag)
				}
			}
			continue
		}
		if m := f.re.FindString(f.text); m != "" {
			t.Errorf("%s: %s: %q", f.file, f.why, m)
		}
	}
	// Every element the script looks up exists in the page.
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`\sid="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		ids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\$\("([^"]+)"\)`).FindAllStringSubmatch(js, -1) {
		if !ids[m[1]] {
			t.Errorf("app.js uses #%s, which index.html lacks", m[1])
		}
	}
	// The token is only ever sent in the Authorization header.
	if n := strings.Count(js, "sessionStorage.getItem(TOKEN_KEY)"); n == 0 || !strings.Contains(js, `Authorization: "Bearer " + token`) {
		t.Error("app.js no longer sends the session token as a bearer header")
	}
}

// FuzzDashboardRequest: whatever path and If-None-Match a client sends under
// the dashboard, the answer is one of the embedded files, a 304 for one, a
// redirect or a 404, and never needs the token or reaches the store.
func FuzzDashboardRequest(f *testing.F) {
	f.Add("app.js", "")
	f.Add("", `"x", W/"y"`)
	f.Add("../admin/v1/accounts", "*")
	f.Add("%2e%2e/%2e%2e/etc/passwd", "")
	f.Add("index.html/", `W/`)
	h := newTestServer(nil, nil).Handler()
	bodies := map[string]bool{}
	for _, a := range dashboardAssets {
		bodies[string(a.body)] = true
	}
	f.Fuzz(func(t *testing.T, rest, ifNoneMatch string) {
		req, err := http.NewRequest(http.MethodGet, "http://admin.test"+DashboardPath+rest, nil)
		if err != nil {
			return // not a URL a client could send
		}
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if !bodies[rec.Body.String()] {
				t.Fatalf("GET %s answered 200 with something not embedded", req.URL)
			}
			if rec.Header().Get("Content-Security-Policy") != dashboardCSP {
				t.Fatalf("GET %s without the CSP", req.URL)
			}
		case http.StatusNotModified, http.StatusNotFound, http.StatusUnauthorized,
			http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			// A clean path under the dashboard never asks for the token. (An
			// unclean one, "/dashboard/../x", is the router's to refuse.)
			clean := path.Clean(req.URL.Path)
			if rec.Code == http.StatusUnauthorized && (clean == req.URL.Path || clean+"/" == req.URL.Path) && strings.HasPrefix(req.URL.Path, DashboardPath) {
				t.Fatalf("GET %s: 401", req.URL)
			}
		default:
			t.Fatalf("GET %s: unexpected %d %s", req.URL, rec.Code, rec.Body)
		}
	})
}
