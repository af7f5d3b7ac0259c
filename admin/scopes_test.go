package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
)

// Every row of the route table declares a scope, once per pattern: a route
// added without one fails here.
func TestEveryRouteHasAScope(t *testing.T) {
	s := newTestServer(nil, nil)
	seen := map[string]bool{}
	for _, rt := range s.routes() {
		if rt.scope != scopeAny && !slices.Contains(Scopes, rt.scope) {
			t.Errorf("%s: scope %q is not one of %v", rt.pattern, rt.scope, Scopes)
		}
		if rt.handle == nil {
			t.Errorf("%s: no handler", rt.pattern)
		}
		if seen[rt.pattern] {
			t.Errorf("%s: listed twice", rt.pattern)
		}
		seen[rt.pattern] = true
		if !strings.Contains(rt.pattern, " /admin/") {
			t.Errorf("%s: not an /admin/ route", rt.pattern)
		}
	}
	if len(seen) < 19 {
		t.Fatalf("only %d routes in the table", len(seen))
	}
}

// scopedTokens are one token per scope set the table test uses.
var scopedTokens = []Token{
	{Secret: "tok-read-0123456789", Name: "reader", Scopes: []Scope{ScopeRead}},
	{Secret: "tok-keys-0123456789", Name: "keysmith", Scopes: []Scope{ScopeKeys}},
	{Secret: "tok-billing-0123456789", Name: "cashier", Scopes: []Scope{ScopeBilling}},
	{Secret: "tok-admin-0123456789", Name: "ops", Scopes: []Scope{ScopeAdmin}},
	{Secret: "tok-none-0123456789", Name: "nobody"},
}

// Every route, called by every token: a token without the route's scope gets
// 403 insufficient_scope in the admin error shape, and the handler never runs;
// a token with it (or admin) gets past the check.
func TestRoutesRefuseTokensWithoutTheirScope(t *testing.T) {
	s := newTestServer(nil, nil)
	s.ScopedTokens = func() []Token { return scopedTokens }
	h := s.Handler()
	for _, rt := range s.routes() {
		method, pattern, _ := strings.Cut(rt.pattern, " ")
		path := strings.NewReplacer("{id}", "acme", "{key_id}", "key_1").Replace(pattern)
		for _, tok := range scopedTokens {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(method, path, strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer "+tok.Secret)
			h.ServeHTTP(rec, req)
			allowed := tok.Allows(rt.scope)
			if !allowed {
				if rec.Code != http.StatusForbidden {
					t.Errorf("%s by %s (%v): status %d, want 403", rt.pattern, tok.Name, tok.Scopes, rec.Code)
					continue
				}
				var body ErrorResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != CodeInsufficientScope ||
					body.Error.Type != TypePermission || !strings.Contains(body.Error.Message, string(rt.scope)) {
					t.Errorf("%s by %s: body %s; want %s naming the scope %q", rt.pattern, tok.Name, rec.Body, CodeInsufficientScope, rt.scope)
				}
				continue
			}
			if rec.Code == http.StatusForbidden || rec.Code == http.StatusUnauthorized {
				t.Errorf("%s by %s (%v): status %d; the token has the scope", rt.pattern, tok.Name, tok.Scopes, rec.Code)
			}
		}
	}
}

// A scope is granted only by itself or by admin.
func TestTokenAllows(t *testing.T) {
	for _, tok := range scopedTokens {
		for _, sc := range Scopes {
			want := slices.Contains(tok.Scopes, sc) || slices.Contains(tok.Scopes, ScopeAdmin)
			if got := tok.Allows(sc); got != want {
				t.Errorf("%s.Allows(%s) = %v, want %v", tok.Name, sc, got, want)
			}
		}
		if !tok.Allows(scopeAny) {
			t.Errorf("%s may not call whoami", tok.Name)
		}
	}
}

// whoami tells a token its name and what it may do; a bare token is a full
// admin named after its hash.
func TestWhoAmI(t *testing.T) {
	s := newTestServer(nil, nil)
	s.ScopedTokens = func() []Token { return scopedTokens }
	h := s.Handler()
	for _, tc := range []struct {
		token string
		want  WhoAmI
	}{
		{"tok-read-0123456789", WhoAmI{Name: "reader", Scopes: []string{"read"}, Can: map[string]bool{"read": true, "keys": false, "billing": false, "admin": false}}},
		{"tok-admin-0123456789", WhoAmI{Name: "ops", Scopes: []string{"admin"}, Can: map[string]bool{"read": true, "keys": true, "billing": true, "admin": true}}},
		{testToken, WhoAmI{Name: testActor, Scopes: []string{"admin"}, Can: map[string]bool{"read": true, "keys": true, "billing": true, "admin": true}}},
	} {
		rec := call(t, h, "GET", "/admin/v1/whoami", "", "Authorization", "Bearer "+tc.token)
		var got WhoAmI
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
			t.Fatalf("whoami: %d %s", rec.Code, rec.Body)
		}
		if got.Name != tc.want.Name || !slices.Equal(got.Scopes, tc.want.Scopes) || len(got.Can) != 4 {
			t.Fatalf("whoami %+v, want %+v", got, tc.want)
		}
		for k, v := range tc.want.Can {
			if got.Can[k] != v {
				t.Fatalf("whoami can[%s] = %v, want %v", k, got.Can[k], v)
			}
		}
	}
	if !strings.HasPrefix(testActor, "admin-") || strings.Contains(testActor, testToken) {
		t.Fatalf("bare token name %q", testActor)
	}
}

// The token's name reaches the ledger requests its calls make (the store puts
// it on the events: redisstore's tests).
func TestActorReachesTheLedger(t *testing.T) {
	var topUp billing.TopUpRequest
	var adjust billing.AdjustRequest
	var update billing.AccountUpdate
	l := &fakeLedger{
		TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
			topUp = r
			return billing.TopUpResult{Grant: billing.Grant{ID: r.GrantID, Amount: r.Amount}}, nil
		},
		AdjustFunc: func(_ context.Context, _ billing.Policy, _ string, r billing.AdjustRequest) (billing.AdjustResult, error) {
			adjust = r
			return billing.AdjustResult{ID: "adj_1", Amount: r.Amount}, nil
		},
		UpdateAccountFunc: func(_ context.Context, id string, u billing.AccountUpdate) (billing.AccountUpdateResult, error) {
			update = u
			return billing.AccountUpdateResult{Account: billing.Account{ID: id, Tier: "tier-1"}, EventIDs: []string{"1-0"}}, nil
		},
	}
	s := newTestServer(l, nil)
	s.ScopedTokens = func() []Token { return scopedTokens }
	h := s.Handler()
	cashier := []string{"Authorization", "Bearer tok-billing-0123456789"}
	if rec := call(t, h, "POST", "/admin/v1/accounts/acme/credits", `{"amount":"10.00"}`, cashier...); rec.Code != http.StatusCreated || topUp.Actor != "cashier" {
		t.Fatalf("top-up: %d %s, actor %q", rec.Code, rec.Body, topUp.Actor)
	}
	if rec := call(t, h, "POST", "/admin/v1/accounts/acme/adjustments", `{"amount":"-1.00","reason":"fix"}`, cashier...); rec.Code != http.StatusCreated || adjust.Actor != "cashier" {
		t.Fatalf("adjustment: %d %s, actor %q", rec.Code, rec.Body, adjust.Actor)
	}
	if rec := call(t, h, "PATCH", "/admin/v1/accounts/acme", `{"status":"suspended"}`, "Authorization", "Bearer tok-admin-0123456789"); rec.Code != http.StatusOK || update.Actor != "ops" {
		t.Fatalf("update: %d %s, actor %q", rec.Code, rec.Body, update.Actor)
	}
}
