package portal

import (
	"net/http"
	"strings"
)

// access is what a route asks of a request.
type access int

const (
	// public routes answer anyone: the login link, the static files and the
	// demo checkout (which checks its own token).
	public access = iota
	// read routes need a live session and answer for its account only.
	read
	// change routes need a live session and its CSRF token.
	change
)

// route is one endpoint under Path.
type route struct {
	pattern string // a ServeMux pattern, "GET /billing/api/summary"
	access  access
	// serve answers a read or change route for the session's account.
	serve func(w http.ResponseWriter, r *http.Request, s *session)
	// handler answers a public route.
	handler http.Handler
	// ownCSP: the handler sets its own Content-Security-Policy (the demo page).
	ownCSP bool
}

// routeTable is every endpoint of the page. Tests walk it, so a route added
// here without a case in the access tests fails them.
func (h *Handler) routeTable() []route {
	rs := []route{
		{pattern: "GET " + Path + "{$}", access: read, serve: h.servePage},
		{pattern: "GET " + Path + "login", access: public, handler: http.HandlerFunc(h.login)},
		{pattern: "GET " + Path + "static/{file}", access: public, handler: http.HandlerFunc(serveStatic)},
		{pattern: "GET " + Path + "api/summary", access: read, serve: h.summary},
		{pattern: "GET " + Path + "api/usage", access: read, serve: h.usage},
		{pattern: "GET " + Path + "api/payment-method", access: read, serve: h.paymentMethod},
		{pattern: "GET " + Path + "receipts/{purchase}", access: read, serve: h.receipt},
		{pattern: "POST " + Path + "purchases", access: change, serve: h.startPurchase},
		{pattern: "POST " + Path + "auto-recharge", access: change, serve: h.setAutoRecharge},
		{pattern: "POST " + Path + "logout", access: change, serve: h.logout},
	}
	if h.DemoCheckout != nil {
		rs = append(rs, route{pattern: DemoCheckoutPath, access: public, handler: h.DemoCheckout, ownCSP: true})
	}
	return rs
}

// newMux routes the table, every answer with the security headers; other paths
// under Path are 404s with the same headers.
func (h *Handler) newMux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range h.routeTable() {
		mux.Handle(rt.pattern, h.guard(rt))
	}
	mux.Handle(Path, h.guard(route{access: public, handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, Path+"api/") {
			writeError(w, errNotFound)
			return
		}
		h.renderMessage(w, http.StatusNotFound, "Not found", "There is no such page.", false)
	})}))
	mux.Handle("GET /billing", http.RedirectHandler(Path, http.StatusMovedPermanently))
	return mux
}

// guard sets the security headers and checks the route's access before it runs.
func (h *Handler) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("X-Content-Type-Options", "nosniff")
		// The login URL holds a token: no page of the portal sends a Referer.
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !rt.ownCSP {
			hdr.Set("Content-Security-Policy", h.csp())
		}
		if rt.access == public {
			rt.handler.ServeHTTP(w, r)
			return
		}
		hdr.Set("Cache-Control", "no-store")
		s, err := h.session(r)
		if err != nil {
			if rt.pattern == "GET "+Path+"{$}" {
				h.renderMessage(w, http.StatusUnauthorized, "Signed out",
					"Your billing session has ended or was never started. Open the Billing page again from the link you were given.", false)
				return
			}
			writeError(w, err)
			return
		}
		if rt.access == change {
			if err := h.checkCSRF(r, s); err != nil {
				if wantsJSON(r) {
					writeError(w, err)
				} else {
					h.renderMessage(w, err.status, "Refused", err.message, true)
				}
				return
			}
		}
		rt.serve(w, r, s)
	})
}

// csp is the page's policy: its own script, style and API only; no inline
// script or style, no framing, forms only to this origin and the provider's
// checkout (a form-action also governs the redirect after a post).
func (h *Handler) csp() string {
	formAction := "'self'"
	if h.CheckoutOrigin != "" {
		formAction += " " + h.CheckoutOrigin
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"object-src 'none'; base-uri 'none'; form-action " + formAction + "; frame-ancestors 'none'"
}
