package proxy

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CORS lets browser pages on other origins call the data plane (cors.* in the
// configuration). With no AllowedOrigins nothing changes: no CORS header is
// sent and a preflight is a 404, like any OPTIONS.
//
// A preflight (OPTIONS with Access-Control-Request-Method) from an allowed
// origin, for an allowed method and headers, is answered 204 at once, before
// any key is asked for (browsers send none with it); any other preflight gets
// 403 without CORS headers, which the browser reports as a CORS failure. Every
// other response to an allowed origin says it may be read, and which headers
// the page may see. A request from an origin not allowed is served as before,
// without CORS headers: the browser then withholds the answer from the page.
type CORS struct {
	// AllowedOrigins are exact origins ("https://app.example.com") or "*" alone.
	AllowedOrigins []string
	// AllowCredentials sends Access-Control-Allow-Credentials: true to an exact
	// origin (never with "*", which config validation refuses too).
	AllowCredentials bool
	// MaxAge is how long a browser may cache a preflight's answer (0: no header).
	MaxAge time.Duration
}

// The methods a preflight may ask for: what the data plane serves.
const corsMethods = "GET, POST, DELETE, OPTIONS"

// corsHeaders are the request headers a page may send (lower case); x-stainless-*
// (what the official SDKs add: their version, platform, retry count…) too.
var corsHeaders = []string{
	"authorization", "content-type", "accept", "openai-beta", "openai-organization", "openai-project",
	"idempotency-key", "x-request-id",
}

// corsExposed are the response headers a page may read: the request ids, the
// retry advice the SDKs follow, the rate-limit headers, creditgate's own.
const corsExposed = "X-Request-Id, X-Creditgate-Request-Id, X-Creditgate-Reason, Openai-Processing-Ms, Openai-Version, " +
	"Retry-After, X-Should-Retry, X-Ratelimit-Limit-Requests, X-Ratelimit-Remaining-Requests, X-Ratelimit-Reset-Requests, " +
	"X-Ratelimit-Limit-Tokens, X-Ratelimit-Remaining-Tokens, X-Ratelimit-Reset-Tokens"

// corsPolicy is a CORS ready to answer.
type corsPolicy struct {
	any         bool
	origins     map[string]bool
	credentials bool
	maxAge      string // seconds, "" for none
}

func newCORSPolicy(c CORS) *corsPolicy {
	if len(c.AllowedOrigins) == 0 {
		return nil
	}
	p := &corsPolicy{origins: map[string]bool{}}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			p.any = true
		}
		p.origins[o] = true
	}
	p.credentials = c.AllowCredentials && !p.any
	if c.MaxAge > 0 {
		p.maxAge = strconv.FormatInt(int64(c.MaxAge/time.Second), 10)
	}
	return p
}

// allows reports whether a page of origin may read answers.
func (c *corsPolicy) allows(origin string) bool {
	return origin != "" && (c.any || c.origins[origin])
}

// serve applies the policy to r: it answers a preflight itself (true), and
// otherwise sets the headers of an allowed origin on w before the request is
// served.
func (c *corsPolicy) serve(w http.ResponseWriter, r *http.Request) (answered bool) {
	if c == nil {
		return false
	}
	origin := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		c.preflight(w, r, origin)
		return true
	}
	if c.allows(origin) {
		c.allowOrigin(h, origin)
		h.Set("Access-Control-Expose-Headers", corsExposed)
	}
	return false
}

func (c *corsPolicy) allowOrigin(h http.Header, origin string) {
	if c.any {
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if c.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// preflight answers an OPTIONS preflight: 204 with what may be sent, or 403
// saying what is not allowed.
func (c *corsPolicy) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	h := w.Header()
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	method := r.Header.Get("Access-Control-Request-Method")
	asked := requestedHeaders(r)
	switch {
	case !c.allows(origin):
		writeError(w, errCORS("The origin "+strconvQuote(origin)+" may not call this API from a browser (cors.allowed_origins)."))
		return
	case method != http.MethodGet && method != http.MethodPost && method != http.MethodDelete:
		writeError(w, errCORS("The method "+strconvQuote(method)+" is not served."))
		return
	}
	for _, name := range asked {
		if !corsHeaderAllowed(name) {
			writeError(w, errCORS("The request header "+strconvQuote(name)+" may not be sent from a browser."))
			return
		}
	}
	c.allowOrigin(h, origin)
	h.Set("Access-Control-Allow-Methods", corsMethods)
	if len(asked) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(asked, ", "))
	}
	if c.maxAge != "" {
		h.Set("Access-Control-Max-Age", c.maxAge)
	}
	w.WriteHeader(http.StatusNoContent)
}

// requestedHeaders are the preflight's Access-Control-Request-Headers, lower
// case, in order, each once.
func requestedHeaders(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

func corsHeaderAllowed(name string) bool {
	return slices.Contains(corsHeaders, name) || strings.HasPrefix(name, "x-stainless-") && len(name) > len("x-stainless-")
}

func errCORS(message string) *apiError {
	return &apiError{status: http.StatusForbidden, typ: typeInvalidRequest, code: "cors_not_allowed", message: message}
}

// strconvQuote quotes a header value for an error message, cut short.
func strconvQuote(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	return strconv.Quote(s)
}
