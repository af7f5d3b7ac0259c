package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"slices"
)

// Scope is what an admin token may do. Every admin route declares the one it
// needs (routes); a token carries a set of them, and ScopeAdmin grants all.
type Scope string

// The scopes of admin tokens.
const (
	ScopeRead    Scope = "read"    // every GET: accounts, keys, ledger, reports, purchases
	ScopeKeys    Scope = "keys"    // create, change and revoke app keys
	ScopeBilling Scope = "billing" // credits, adjustments, auto-recharge, purchases, Billing page links
	ScopeAdmin   Scope = "admin"   // everything: account creation and changes too
	// scopeAny is a route any valid token may call (whoami).
	scopeAny Scope = "any"
)

// Scopes lists the scopes a token may carry, in order.
var Scopes = []Scope{ScopeRead, ScopeKeys, ScopeBilling, ScopeAdmin}

// Token is one accepted admin token.
type Token struct {
	// Secret is the bearer token.
	Secret string
	// Name names the token: the actor recorded on every ledger event its calls
	// cause, and in the access log.
	Name string
	// Scopes are what it may do (ScopeAdmin: everything).
	Scopes []Scope
}

// Allows reports whether t may call a route that needs scope.
func (t Token) Allows(scope Scope) bool {
	return scope == scopeAny || slices.Contains(t.Scopes, ScopeAdmin) || slices.Contains(t.Scopes, scope)
}

// FullAdmin is a bare token (admin.tokens as a plain string): every scope, named
// "admin-" and the first 8 hex digits of its SHA-256 (which tells bare tokens
// apart in the ledger without revealing them).
func FullAdmin(secret string) Token {
	sum := sha256.Sum256([]byte(secret))
	return Token{Secret: secret, Name: "admin-" + hex.EncodeToString(sum[:4]), Scopes: []Scope{ScopeAdmin}}
}

// route is one admin endpoint: its ServeMux pattern, the scope it needs and
// its handler. Every /admin/ endpoint is a row of Server.routes, so none can be
// added without a scope (TestEveryRouteHasAScope holds every row to one, and
// TestRoutesRefuseTokensWithoutTheirScope calls each with every other scope).
type route struct {
	pattern string
	scope   Scope
	handle  handlerFunc
}

// routes is the control plane's table of endpoints.
func (s *Server) routes() []route {
	return []route{
		{"GET /admin/v1/whoami", scopeAny, s.whoami},
		{"POST /admin/v1/accounts", ScopeAdmin, s.createAccount},
		{"GET /admin/v1/accounts", ScopeRead, s.listAccounts},
		{"GET /admin/v1/accounts/{id}", ScopeRead, s.getAccount},
		{"PATCH /admin/v1/accounts/{id}", ScopeAdmin, s.updateAccount},
		{"POST /admin/v1/accounts/{id}/keys", ScopeKeys, s.createKey},
		{"GET /admin/v1/accounts/{id}/keys", ScopeRead, s.listKeys},
		{"DELETE /admin/v1/accounts/{id}/keys/{key_id}", ScopeKeys, s.revokeKey},
		{"PATCH /admin/v1/accounts/{id}/keys/{key_id}", ScopeKeys, s.updateKey},
		{"POST /admin/v1/accounts/{id}/credits", ScopeBilling, s.addCredits},
		{"POST /admin/v1/accounts/{id}/adjustments", ScopeBilling, s.adjust},
		{"PUT /admin/v1/accounts/{id}/auto-recharge", ScopeBilling, s.setAutoRecharge},
		{"GET /admin/v1/accounts/{id}/ledger", ScopeRead, s.ledgerEvents},
		{"POST /admin/v1/accounts/{id}/purchases", ScopeBilling, s.createPurchase},
		{"GET /admin/v1/accounts/{id}/purchases", ScopeRead, s.listPurchases},
		{"POST /admin/v1/accounts/{id}/portal-sessions", ScopeBilling, s.createPortalSession},
		{"GET /admin/v1/accounts/{id}/usage", ScopeRead, s.usageReport},
		{"GET /admin/v1/accounts/{id}/ledger/recent", ScopeRead, s.recentEvents},
		{"GET /admin/v1/accounts/{id}/ledger/export", ScopeRead, s.exportLedger},
		{"GET /admin/v1/accounts/{id}/audit", ScopeRead, s.auditAccount},
		{"GET /admin/v1/overview", ScopeRead, s.overview},
		{"GET /admin/v1/requests", ScopeRead, s.recentRequests},
	}
}

// tokens are the accepted tokens: Tokens' as full admins, then ScopedTokens.
func (s *Server) tokens() []Token {
	var out []Token
	if s.Tokens != nil {
		for _, t := range s.Tokens() {
			out = append(out, FullAdmin(t))
		}
	}
	if s.ScopedTokens != nil {
		out = append(out, s.ScopedTokens()...)
	}
	return out
}

// authenticate finds the token the request presents. It compares SHA-256
// digests in constant time with every token (equal is
// subtle.ConstantTimeCompare), so the time taken reveals neither a token's
// content nor its length nor which one matched. Empty tokens never match.
func authenticate(presented string, tokens []Token, equal func(a, b []byte) int) (Token, bool) {
	p := sha256.Sum256([]byte(presented))
	found := -1
	for i, t := range tokens {
		d := sha256.Sum256([]byte(t.Secret))
		eq := equal(p[:], d[:])
		if t.Secret == "" {
			eq = 0
		}
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return Token{}, false
	}
	return tokens[found], true
}

// caller is the token of the request, as the router authenticated it.
func caller(r *http.Request) Token {
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return info.token
	}
	return Token{}
}

// actor is the name recorded on the ledger events the request causes.
func actor(r *http.Request) string { return caller(r).Name }

// WhoAmI is GET /admin/v1/whoami: the calling token's name and scopes, and
// what each scope lets it do.
type WhoAmI struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// Can lists every scope and whether this token has it (admin has all).
	Can map[string]bool `json:"can"`
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) *apiError {
	t := caller(r)
	out := WhoAmI{Name: t.Name, Scopes: make([]string, 0, len(t.Scopes)), Can: make(map[string]bool, len(Scopes))}
	for _, sc := range t.Scopes {
		out.Scopes = append(out.Scopes, string(sc))
	}
	for _, sc := range Scopes {
		out.Can[string(sc)] = t.Allows(sc)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// tokenMatches reports whether presented is one of tokens: authenticate over
// bare secrets.
func tokenMatches(presented string, tokens []string, equal func(a, b []byte) int) bool {
	ts := make([]Token, len(tokens))
	for i, t := range tokens {
		ts[i] = Token{Secret: t}
	}
	_, ok := authenticate(presented, ts, equal)
	return ok
}
