// Package admin is creditgate's control plane: the HTTP API that operators, and the
// creditgate CLI through admin/client, use to create accounts, issue and revoke app
// keys, add credits, adjust credit, configure auto-recharge and read an account's ledger, next to
// the unauthenticated /healthz, /readyz and /metrics endpoints. It is a thin layer
// over billing.Ledger and billing.KeyStore, which enforce every money rule
// atomically: this package validates input and names the field at fault, carries
// money as six-decimal strings, maps the store's errors to OpenAI-shaped JSON
// errors, checks the bearer admin token on every /admin/ route and logs each such
// request on one line without bodies, tokens or keys.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/httpstatus"
)

// MaxBodyBytes caps admin request bodies; larger bodies get 413.
const MaxBodyBytes = 1 << 20

// maxLoggedAccountLen is longer than any valid account id.
const maxLoggedAccountLen = 80

// readyTimeout bounds a readiness check, so a hung store makes /readyz answer 503
// instead of hanging the prober.
const readyTimeout = 5 * time.Second

// Server serves the control plane. Set the fields, then serve Handler(); the
// fields are read on every request and must not change afterwards (Policy and
// Tokens are functions so that hot-reloaded values are picked up).
type Server struct {
	Ledger billing.Ledger
	Keys   billing.KeyStore
	// Policy returns the current policy (default tier, tiers, grace, purchase
	// limits). nil means the zero Policy.
	Policy func() billing.Policy
	// Tokens returns full-admin tokens accepted as "Authorization: Bearer
	// <token>" (each is FullAdmin), ScopedTokens named tokens with their
	// scopes (admin.tokens). With neither, every /admin/ request is refused.
	Tokens       func() []string
	ScopedTokens func() []Token
	// Ready reports readiness for /readyz (nil error = ready), e.g. a Redis ping.
	// nil means always ready.
	Ready func(ctx context.Context) error
	// Metrics is served without authentication at GET /metrics when non-nil.
	Metrics http.Handler
	// Logger gets one line per /admin/ request; nil discards.
	Logger *zap.Logger
	// Now is the clock for validating expires_at; nil means time.Now.
	Now func() time.Time
	// Purchases starts and lists purchases through the payment provider
	// (billing/purchase.Service); nil answers starting one with 501.
	Purchases Purchases
	// Portal keeps Billing page links; nil answers portal-sessions with 501.
	Portal billing.PortalStore
	// PortalURL is portal.public_url without a trailing slash, the base of
	// Billing page links; PortalLinkTTL is portal.link_ttl (default 10m).
	PortalURL     string
	PortalLinkTTL time.Duration
	// Directory pages through the accounts for GET /admin/v1/accounts?q=…;
	// nil uses Ledger when it is an AccountDirectory, else a search answers 501.
	Directory AccountDirectory
	// Activity reads the aggregate across accounts for GET /admin/v1/overview
	// and GET /admin/v1/requests; nil answers them with 501.
	Activity ActivityReader
	// Observer is told about each top-up and adjustment booked (metrics); nil:
	// nobody.
	Observer Observer
	// ArchiveCheck, when set, compares an account's ledger in the store with
	// the ledger archive for the audit (pgarchive.Archive.Compare): its
	// problems (check "archive") join the audit's. nil: no archive.
	ArchiveCheck func(ctx context.Context, account string) ([]billing.AuditProblem, error)
}

// publicRoutes are served without an admin token and without the access log:
// probes and scrapes come every few seconds and carry no account data.
var publicRoutes = map[string]bool{
	"GET /healthz": true,
	"GET /readyz":  true,
	"GET /metrics": true,
}

// Handler returns the control plane's http.Handler. Every path outside
// publicRoutes, including unknown ones, requires the admin token.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	scopes := make(map[string]Scope)
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, rt.handle)
		scopes[rt.pattern] = rt.scope
	}
	s.registerDashboard(mux)
	probes := Probes{Ready: s.Ready, Logger: s.Logger}
	mux.HandleFunc("GET /healthz", probes.Healthz)
	mux.HandleFunc("GET /readyz", probes.Readyz)
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	return &router{s: s, mux: mux, scopes: scopes}
}

// handlerFunc is an endpoint that returns its error answer instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) *apiError

func (h handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := h(w, r); e != nil {
		writeError(w, r, e)
	}
}

// router authenticates, caps bodies and logs around the ServeMux, and answers
// unmatched requests in JSON rather than ServeMux's plain text.
type router struct {
	s   *Server
	mux *http.ServeMux
	// scopes is what each route of the table needs (routes).
	scopes map[string]Scope
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := rt.mux.Handler(r)
	if publicRoutes[pattern] {
		rt.mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	info := &requestInfo{}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
	sw := httpstatus.New(w)
	r.Body = http.MaxBytesReader(sw, r.Body, MaxBodyBytes)
	// Answers carry account state and, once, a key's secret: keep them out of caches.
	sw.Header().Set("Cache-Control", "no-store")
	token, ok := rt.s.authenticate(r)
	info.token = token
	scope, declared := rt.scopes[pattern]
	switch {
	case !ok:
		sw.Header().Set("WWW-Authenticate", `Bearer realm="creditgate admin"`)
		writeError(sw, r, &apiError{status: http.StatusUnauthorized, typ: TypeAuthentication, code: CodeInvalidAdminToken,
			message: "missing or invalid admin token; send \"Authorization: Bearer <admin token>\""})
	case pattern == "":
		writeError(sw, r, rt.unmatched(sw, r))
	case !declared:
		// A route registered outside the table: refused to everyone (fail closed).
		writeError(sw, r, internalError(fmt.Errorf("admin: route %q declares no scope", pattern)))
	case !token.Allows(scope):
		writeError(sw, r, &apiError{status: http.StatusForbidden, typ: TypePermission, code: CodeInsufficientScope,
			message: fmt.Sprintf("the admin token %q may not call %s: it needs the %q scope (it has %s)", token.Name, pattern, scope, scopeList(token.Scopes))})
	default:
		rt.mux.ServeHTTP(sw, r)
	}
	status := sw.Status()
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	rt.s.logRequest(r, pattern, status, time.Since(start), info)
}

// unmatched turns ServeMux's plain-text 404 or 405 into a JSON error, keeping
// its Allow header.
func (rt *router) unmatched(w http.ResponseWriter, r *http.Request) *apiError {
	h, _ := rt.mux.Handler(r)
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.code == http.StatusMethodNotAllowed {
		allow := probe.header.Get("Allow")
		w.Header().Set("Allow", allow)
		return &apiError{status: http.StatusMethodNotAllowed, typ: TypeInvalidRequest, code: CodeMethodNotAllowed,
			message: "method " + r.Method + " is not allowed on " + r.URL.Path + "; allowed: " + allow}
	}
	return notFound(CodeUnknownRoute, "no such endpoint: %s %s", r.Method, r.URL.Path)
}

// authenticate returns the token the request carries, if it is one of the
// admin tokens.
func (s *Server) authenticate(r *http.Request) (Token, bool) {
	presented, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return Token{}, false
	}
	return authenticate(presented, s.tokens(), subtle.ConstantTimeCompare)
}

func scopeList(scopes []Scope) string {
	if len(scopes) == 0 {
		return "none"
	}
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = string(sc)
	}
	return strings.Join(names, ", ")
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// requestInfo collects what the access log needs from inside a handler.
type requestInfo struct {
	account string
	cause   error // why a 5xx happened
	token   Token // the caller (zero until authenticated)
}

type requestInfoKey struct{}

// noteAccount records the account a request is about, for the access log.
func noteAccount(r *http.Request, id string) {
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		info.account = id
	}
}

func (s *Server) logRequest(r *http.Request, pattern string, status int, latency time.Duration, info *requestInfo) {
	log := s.Logger
	if log == nil {
		return
	}
	if pattern == "" {
		pattern = "unmatched"
	}
	level := zapcore.InfoLevel
	switch {
	case status == http.StatusServiceUnavailable:
		level = zapcore.WarnLevel
	case status >= 500:
		level = zapcore.ErrorLevel
	}
	fields := []zap.Field{
		zap.String("method", r.Method),
		zap.String("route", pattern),
		zap.Int("status", status),
		zap.Duration("latency", latency),
	}
	if info.token.Name != "" {
		fields = append(fields, zap.String("actor", info.token.Name))
	}
	if info.account != "" {
		account := info.account
		if len(account) > maxLoggedAccountLen { // an invalid id may be up to a body long
			account = account[:maxLoggedAccountLen] + "…"
		}
		fields = append(fields, zap.String("account", account))
	}
	if info.cause != nil {
		fields = append(fields, zap.Error(info.cause))
	}
	log.Log(level, "admin request", fields...)
}

func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.cause != nil {
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			info.cause = e.cause
		}
	}
	writeJSON(w, e.status, e.body())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// The wire types always marshal; this guards against a future field that does not.
		status = http.StatusInternalServerError
		b, _ = json.Marshal(internalError(err).body())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// headerProbe captures ServeMux's answer to an unmatched request.
type headerProbe struct {
	header http.Header
	code   int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
