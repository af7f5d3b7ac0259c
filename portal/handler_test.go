package portal

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

func TestLogin(t *testing.T) {
	e := newEnv(t)
	e.account("acme")
	used := e.link("acme", 10*time.Minute)
	if rec := e.do(http.MethodGet, "/billing/login?token="+used, nil, nil, nil); rec.Code != http.StatusSeeOther {
		t.Fatalf("first use: %d", rec.Code)
	}
	expired := e.link("acme", 150*time.Millisecond)
	time.Sleep(300 * time.Millisecond)

	cases := []struct {
		name   string
		token  string
		status int
		text   string // in the body
	}{
		{"good", e.link("acme", 10*time.Minute), http.StatusSeeOther, ""},
		{"reused", used, http.StatusGone, "expired or was already used"},
		{"expired", expired, http.StatusGone, "expired or was already used"},
		{"unknown", randomToken(), http.StatusGone, "expired or was already used"},
		{"missing", "", http.StatusBadRequest, "needs the token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(http.MethodGet, "/billing/login?token="+url.QueryEscape(tc.token), nil, nil, nil)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.text) {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			cookies := rec.Result().Cookies()
			if tc.status != http.StatusSeeOther {
				if len(cookies) != 0 {
					t.Errorf("a refused link set cookies: %v", cookies)
				}
				return
			}
			if loc := rec.Header().Get("Location"); loc != "/billing/" {
				t.Errorf("redirect to %q, want /billing/ (the token leaves the URL)", loc)
			}
			if len(cookies) != 1 {
				t.Fatalf("cookies %v", cookies)
			}
			c := cookies[0]
			if c.Name != CookieName || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/billing/" || c.MaxAge != 3600 || c.Secure {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/billing/, Max-Age=3600, not Secure over plain HTTP", c)
			}
			if len(c.Value) < 40 || strings.Contains(c.Value, tc.token) {
				t.Errorf("cookie value %q: want a fresh random id", c.Value)
			}
			// The store knows the session by the SHA-256 of the cookie only.
			s, err := e.sessions.GetPortalSession(context.Background(), billing.HashKey(c.Value))
			if err != nil || s.Account != "acme" || s.CSRF == "" || s.ReturnURL != "https://app.example.test/settings" {
				t.Errorf("stored session %+v %v", s, err)
			}
			if d := time.Until(s.ExpiresAt); d < 59*time.Minute || d > time.Hour {
				t.Errorf("session expires in %s, want portal.session_ttl (1h)", d)
			}
		})
	}
}

// TestCookieSecure: under TLS, or behind a TLS proxy (an https public URL), the
// cookie is Secure.
func TestCookieSecure(t *testing.T) {
	e := newEnv(t)
	e.account("acme")
	for _, tc := range []struct {
		name   string
		tls    bool
		public string
	}{{"tls", true, ""}, {"https public url", false, "https://billing.example.test"}} {
		t.Run(tc.name, func(t *testing.T) {
			e.h.PublicURL = nil
			if tc.public != "" {
				e.h.PublicURL, _ = url.Parse(tc.public)
			}
			hdr := map[string]string{}
			if tc.tls {
				hdr["tls"] = "1"
			}
			rec := e.do(http.MethodGet, "/billing/login?token="+e.link("acme", time.Minute), nil, nil, hdr)
			cs := rec.Result().Cookies()
			if rec.Code != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure {
				t.Fatalf("%d, cookies %+v: want one Secure cookie", rec.Code, cs)
			}
		})
	}
}

// routeCall is a request to one route with what the route needs.
func routeCall(pattern string) (method, target string, form url.Values) {
	method, path, _ := strings.Cut(pattern, " ")
	path = strings.ReplaceAll(path, "{$}", "")
	path = strings.ReplaceAll(path, "{purchase}", "pur_acme_paid")
	path = strings.ReplaceAll(path, "{file}", "app.js")
	switch path {
	case Path + "purchases":
		form = url.Values{"amount": {"10"}}
	case Path + "auto-recharge":
		form = url.Values{"enabled": {"on"}, "threshold": {"5"}, "amount": {"10"}, "monthly_limit": {"50"}}
	}
	return method, path, form
}

// TestRoutesNeedSession: every route but the public ones is 401 without a
// session, with an ended one, and with a made-up cookie.
func TestRoutesNeedSession(t *testing.T) {
	e := newEnv(t)
	e.account("acme")
	ended := e.login("acme")
	if err := e.sessions.DeletePortalSession(context.Background(), billing.HashKey(ended.cookie.Value)); err != nil {
		t.Fatal(err)
	}
	made := &client{cookie: &http.Cookie{Name: CookieName, Value: randomToken()}}
	n := 0
	for _, rt := range e.h.routeTable() {
		if rt.access == public {
			continue
		}
		n++
		for _, c := range []struct {
			name string
			c    *client
		}{{"none", nil}, {"ended", ended}, {"made up", made}} {
			method, target, form := routeCall(rt.pattern)
			hdr := map[string]string{"Accept": "application/json"}
			if c.c != nil {
				hdr[CSRFHeader] = c.c.csrf
			}
			rec := e.do(method, target, c.c, form, hdr)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s with %s session: %d, want 401", rt.pattern, c.name, rec.Code)
			}
		}
	}
	if n < 8 {
		t.Fatalf("only %d session routes", n)
	}
	if a, err := e.store.GetAccount(context.Background(), "acme"); err != nil || a.AutoRecharge.Enabled {
		t.Errorf("a refused request changed auto-recharge: %+v %v", a.AutoRecharge, err)
	}
	if len(e.purchases.Starts()) != 0 {
		t.Errorf("a refused request started purchases: %v", e.purchases.Starts())
	}
}

// TestChangesNeedCSRF: every state-changing route refuses a request without
// the session's CSRF token, with a wrong one, and a cross-site one; with it, it
// is not refused.
func TestChangesNeedCSRF(t *testing.T) {
	e := newEnv(t)
	e.account("acme")
	n := 0
	for _, rt := range e.h.routeTable() {
		if rt.access != change {
			continue
		}
		n++
		c := e.login("acme")
		method, target, form := routeCall(rt.pattern)
		for _, tc := range []struct {
			name string
			hdr  map[string]string
			form url.Values
		}{
			{"no token", map[string]string{"Accept": "application/json"}, form},
			{"wrong header", map[string]string{"Accept": "application/json", CSRFHeader: randomToken()}, form},
			{"wrong field", nil, withField(form, CSRFField, c.csrf[:len(c.csrf)-1]+"x")},
			{"other session's token", map[string]string{CSRFHeader: e.login("acme").csrf}, form},
			{"cross-site", map[string]string{CSRFHeader: c.csrf, "Sec-Fetch-Site": "cross-site"}, form},
		} {
			rec := e.do(method, target, c, tc.form, tc.hdr)
			if rec.Code != http.StatusForbidden {
				t.Errorf("%s, %s: %d, want 403", rt.pattern, tc.name, rec.Code)
			}
		}
		for _, via := range []string{"header", "field"} {
			if rt.pattern == "POST "+Path+"logout" {
				c = e.login("acme") // each case signs out
			}
			hdr, f := c.jsonHeaders(), form
			if via == "field" {
				hdr, f = nil, withField(form, CSRFField, c.csrf)
			}
			rec := e.do(method, target, c, f, hdr)
			if rec.Code == http.StatusForbidden || rec.Code >= 500 {
				t.Errorf("%s with the token in the %s: %d %s", rt.pattern, via, rec.Code, rec.Body)
			}
		}
	}
	if n != 3 {
		t.Fatalf("%d change routes, want 3 (purchases, auto-recharge, logout)", n)
	}
}

func withField(form url.Values, k, v string) url.Values {
	out := url.Values{}
	for key, vs := range form {
		out[key] = vs
	}
	out.Set(k, v)
	return out
}

// TestAccountScope: globex's session, given acme's ids and told "account=acme"
// every way a client could say it, reads and changes only globex. Every route
// must have a case here: a new route without one fails the test.
func TestAccountScope(t *testing.T) {
	e := newEnv(t)
	e.account("acme", "gpt-4o", "acme-secret-model")
	e.account("globex", "gpt-4o-mini")
	e.purchases.add(billing.Purchase{ID: "pur_acme_paid", Account: "acme", Amount: money.MustParse("25.00"), PaidAmount: money.MustParse("25.00"),
		Status: billing.PurchasePaid, Provider: "stripe", PaymentRef: "pi_acme", CreatedAt: time.Now().Add(-time.Hour)})
	e.purchases.add(billing.Purchase{ID: "pur_globex_paid", Account: "globex", Amount: money.MustParse("10.00"), PaidAmount: money.MustParse("10.00"),
		Status: billing.PurchasePaid, Provider: "stripe", PaymentRef: "pi_globex", CreatedAt: time.Now().Add(-time.Hour)})
	e.cards.cards["acme"] = &payments.Card{ID: "pm_acme", Brand: "visa", Last4: "4242", ExpMonth: 1, ExpYear: 2030}
	acme := e.login("acme")
	globex := e.login("globex")
	ctx := context.Background()
	acmeBefore, _ := e.store.GetAccount(ctx, "acme")

	// acme's secrets: none of these may appear in an answer to globex.
	acmeOnly := []string{"acme", "pur_acme_paid", "pi_acme", "acme-secret-model", "acme-backend", "4242", acme.csrf}
	noAcme := func(t *testing.T, body string) {
		t.Helper()
		for _, s := range acmeOnly {
			if strings.Contains(body, s) {
				t.Errorf("globex's answer contains acme's %q: %.300s", s, body)
			}
		}
	}
	cases := map[string]func(t *testing.T, method, target string, form url.Values){
		"GET /billing/{$}": func(t *testing.T, m, target string, _ url.Values) {
			rec := e.do(m, target+"?account=acme", globex, nil, nil)
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "globex") {
				t.Fatalf("%d", rec.Code)
			}
			noAcme(t, rec.Body.String())
		},
		"GET /billing/api/summary": func(t *testing.T, m, target string, _ url.Values) {
			rec := e.do(m, target+"?account=acme&id=acme", globex, nil, map[string]string{"X-Account": "acme"})
			var s summaryJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || s.Account != "globex" || len(s.Purchases) != 1 || s.Purchases[0].ID != "pur_globex_paid" {
				t.Fatalf("%d %+v %v", rec.Code, s, err)
			}
			noAcme(t, rec.Body.String())
		},
		"GET /billing/api/usage": func(t *testing.T, m, target string, _ url.Values) {
			rec := e.do(m, target+"?account=acme", globex, nil, nil)
			var u usageJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &u); err != nil || u.Total.Requests != 1 || len(u.ByModel) != 1 || u.ByModel[0].Name != "gpt-4o-mini" {
				t.Fatalf("%d %+v %v", rec.Code, u, err)
			}
			noAcme(t, rec.Body.String())
		},
		"GET /billing/api/payment-method": func(t *testing.T, m, target string, _ url.Values) {
			rec := e.do(m, target+"?account=acme", globex, nil, nil)
			if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"card":null}` {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if last := e.cards.asked[len(e.cards.asked)-1]; last != "globex" {
				t.Errorf("asked the card of %q", last)
			}
		},
		"GET /billing/receipts/{purchase}": func(t *testing.T, m, target string, _ url.Values) {
			// target names acme's purchase.
			rec := e.do(m, target, globex, nil, nil)
			if rec.Code != http.StatusNotFound {
				t.Fatalf("globex opening acme's receipt: %d %s", rec.Code, rec.Header().Get("Location"))
			}
			noAcme(t, rec.Body.String())
			if own := e.do(m, "/billing/receipts/pur_globex_paid", globex, nil, nil); own.Code != http.StatusSeeOther ||
				own.Header().Get("Location") != "https://receipts.example.test/pi_globex" {
				t.Errorf("globex's own receipt: %d %q", own.Code, own.Header().Get("Location"))
			}
		},
		"POST /billing/purchases": func(t *testing.T, m, target string, form url.Values) {
			rec := e.do(m, target+"?account=acme", globex, withField(form, "account", "acme"), globex.jsonHeaders())
			starts := e.purchases.Starts()
			if rec.Code != http.StatusCreated || len(starts) == 0 || starts[len(starts)-1].Account != "globex" {
				t.Fatalf("%d %s, starts %+v", rec.Code, rec.Body, starts)
			}
		},
		"POST /billing/auto-recharge": func(t *testing.T, m, target string, form url.Values) {
			rec := e.do(m, target+"?account=acme", globex, withField(form, "account", "acme"), globex.jsonHeaders())
			g, _ := e.store.GetAccount(ctx, "globex")
			if rec.Code != http.StatusOK || !g.AutoRecharge.Enabled {
				t.Fatalf("%d %s; globex %+v", rec.Code, rec.Body, g.AutoRecharge)
			}
		},
		"POST /billing/logout": func(t *testing.T, m, target string, form url.Values) {
			rec := e.do(m, target+"?account=acme", globex, withField(form, "account", "acme"), globex.jsonHeaders())
			if rec.Code != http.StatusOK {
				t.Fatalf("%d", rec.Code)
			}
			if page := e.do(http.MethodGet, "/billing/", acme, nil, nil); page.Code != http.StatusOK {
				t.Errorf("globex signing out ended acme's session: %d", page.Code)
			}
			if page := e.do(http.MethodGet, "/billing/", globex, nil, nil); page.Code != http.StatusUnauthorized {
				t.Errorf("globex is still signed in: %d", page.Code)
			}
		},
	}
	// acme's own session with the same cookie reaches acme's data (the cases above are not vacuous).
	if rec := e.do(http.MethodGet, "/billing/api/summary", acme, nil, nil); !strings.Contains(rec.Body.String(), "pur_acme_paid") {
		t.Fatalf("acme's own summary lacks its purchase: %s", rec.Body)
	}
	for _, rt := range e.h.routeTable() {
		if rt.access == public {
			continue
		}
		check, ok := cases[rt.pattern]
		if !ok {
			t.Errorf("route %s has no account-scope case: add one", rt.pattern)
			continue
		}
		delete(cases, rt.pattern)
		t.Run(rt.pattern, func(t *testing.T) {
			method, target, form := routeCall(rt.pattern)
			check(t, method, target, form)
		})
	}
	for p := range cases {
		t.Errorf("scope case %s matches no route", p)
	}
	after, _ := e.store.GetAccount(ctx, "acme")
	if after.AutoRecharge != acmeBefore.AutoRecharge || after.Balance() != acmeBefore.Balance() || after.LastEventID != acmeBefore.LastEventID {
		t.Errorf("globex's requests changed acme: %+v → %+v", acmeBefore, after)
	}
	for _, s := range e.purchases.Starts() {
		if s.Account != "globex" {
			t.Errorf("a purchase was started for %s", s.Account)
		}
	}
}

// TestSecurityHeaders: every answer, whatever the route and status, carries the
// CSP and the other headers.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	e.account("acme")
	demoPage := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		w.WriteHeader(http.StatusNotFound)
	})
	e.h.DemoCheckout = demoPage
	c := e.login("acme")
	var targets []struct {
		method, target string
		c              *client
		form           url.Values
		hdr            map[string]string
	}
	add := func(method, target string, c *client, form url.Values, hdr map[string]string) {
		targets = append(targets, struct {
			method, target string
			c              *client
			form           url.Values
			hdr            map[string]string
		}{method, target, c, form, hdr})
	}
	for _, rt := range e.h.routeTable() {
		method, target, form := routeCall(rt.pattern)
		if rt.pattern == DemoCheckoutPath {
			method, target = http.MethodGet, DemoCheckoutPath+"pur_x"
		}
		if rt.pattern == "POST "+Path+"logout" {
			continue // below, last
		}
		add(method, target, c, form, c.jsonHeaders()) // served
		add(method, target, nil, form, nil)           // refused
	}
	add(http.MethodGet, "/billing/login?token=nope", nil, nil, nil)
	add(http.MethodGet, "/billing/login?token="+e.link("acme", time.Minute), nil, nil, nil)
	add(http.MethodGet, "/billing/static/nope.js", nil, nil, nil)
	add(http.MethodGet, "/billing/nope", c, nil, nil)
	add(http.MethodGet, "/billing/api/nope", c, nil, nil)
	add(http.MethodPost, "/billing/purchases", c, url.Values{"amount": {"1"}}, c.jsonHeaders())
	add(http.MethodPost, "/billing/purchases", c, url.Values{"amount": {"1"}}, nil)
	add(http.MethodPost, "/billing/logout", c, nil, c.jsonHeaders())
	for _, tc := range targets {
		rec := e.do(tc.method, tc.target, tc.c, tc.form, tc.hdr)
		h := rec.Header()
		name := tc.method + " " + tc.target + " (" + http.StatusText(rec.Code) + ")"
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP %q", name, csp)
		}
		if !strings.HasPrefix(tc.target, DemoCheckoutPath) {
			want := "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
				"form-action 'self' https://checkout.example.test; frame-ancestors 'none'"
			if csp != want {
				t.Errorf("%s: CSP %q, want %q", name, csp, want)
			}
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", name, h)
		}
		if strings.HasPrefix(tc.target, "/billing/api/") || strings.HasPrefix(tc.target, "/billing/login") {
			if h.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q", name, h.Get("Cache-Control"))
			}
		}
	}
}

// TestNewLink: a minted link opens the account's page once.
func TestNewLink(t *testing.T) {
	e := newEnv(t)
	e.account("acme")
	ctx := context.Background()
	link, err := NewLink(ctx, e.sessions, "https://billing.example.test/", billing.PortalLink{Account: "acme", ExpiresAt: time.Now().Add(time.Minute)})
	if err != nil || !strings.HasPrefix(link, "https://billing.example.test/billing/login?token=") {
		t.Fatalf("link %q %v", link, err)
	}
	u, _ := url.Parse(link)
	target := u.RequestURI()
	if rec := e.do(http.MethodGet, target, nil, nil, nil); rec.Code != http.StatusSeeOther {
		t.Errorf("first open: %d", rec.Code)
	}
	if rec := e.do(http.MethodGet, target, nil, nil, nil); rec.Code != http.StatusGone {
		t.Errorf("second open: %d", rec.Code)
	}
	for _, bad := range []struct{ base, account string }{{"billing.example.test", "acme"}, {"https://x.test", "a{b}"}} {
		if _, err := NewLink(ctx, e.sessions, bad.base, billing.PortalLink{Account: bad.account}); !errors.Is(err, billing.ErrInvalid) {
			t.Errorf("NewLink(%q, %q): %v, want ErrInvalid", bad.base, bad.account, err)
		}
	}
}
