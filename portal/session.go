package portal

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
)

// CookieName is the session cookie. (A __Host- name would need Path=/, and the
// cookie belongs to /billing/ only.)
const CookieName = "creditgate_billing"

// CSRFHeader carries the session's CSRF token on the page's fetch calls; forms
// carry it as the field CSRFField.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf"
)

// session is a signed-in customer: the store's session and the hash of the
// cookie that named it.
type session struct {
	billing.PortalSession
	id billing.KeyHash
}

// randomToken is 32 random bytes, base64url: session ids and CSRF tokens.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (see billing.NewID)
	return base64.RawURLEncoding.EncodeToString(b)
}

// login redeems a portal link: GET /billing/login?token=… starts a session and
// redirects to the page, so the token leaves the address bar and the history.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	token := r.URL.Query().Get("token")
	if token == "" {
		h.renderMessage(w, http.StatusBadRequest, "Link incomplete", "This address needs the token of a billing link. Open the whole link you were given.", false)
		return
	}
	link, err := h.Sessions.RedeemPortalLink(r.Context(), billing.HashKey(token))
	if err != nil {
		if errors.Is(err, billing.ErrPortalLinkInvalid) {
			// One answer for unknown, used and expired links.
			h.renderMessage(w, http.StatusGone, "Link expired",
				"This billing link has expired or was already used. Links work once and only for a few minutes: ask for a new one.", false)
			return
		}
		h.log().Error("portal: redeeming a link", zap.Error(err))
		h.renderMessage(w, http.StatusServiceUnavailable, "Unavailable", "The billing service is unavailable. Try the link again in a minute.", false)
		return
	}
	// A link replaces the session this browser had, if any.
	if old, err := r.Cookie(CookieName); err == nil && old.Value != "" {
		_ = h.Sessions.DeletePortalSession(r.Context(), billing.HashKey(old.Value))
	}
	id := randomToken()
	ttl := h.sessionTTL()
	s := billing.PortalSession{Account: link.Account, ReturnURL: link.ReturnURL, CSRF: randomToken(), ExpiresAt: h.now().Add(ttl)}
	if err := h.Sessions.CreatePortalSession(r.Context(), billing.HashKey(id), s); err != nil {
		h.log().Error("portal: creating a session", zap.String("account", link.Account), zap.Error(err))
		h.renderMessage(w, http.StatusServiceUnavailable, "Unavailable", "The billing service is unavailable, and this link has been used. Ask for a new one.", false)
		return
	}
	http.SetCookie(w, h.cookie(r, id, int(ttl/time.Second)))
	http.Redirect(w, r, Path, http.StatusSeeOther)
}

// cookie is the session cookie. SameSite=Lax, not Strict: the browser comes
// back from the provider's checkout page, and from the operator's app with a
// link, by a top-level navigation from another site, which Strict would send
// without the cookie (the customer would look signed out). Lax still withholds
// it from cross-site posts, and every change needs the CSRF token anyway.
func (h *Handler) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: CookieName, Value: value, Path: Path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil || (h.PublicURL != nil && h.PublicURL.Scheme == "https"),
	}
}

// session returns the request's live session, or a 401.
func (h *Handler) session(r *http.Request) (*session, *apiError) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return nil, errNoSession
	}
	id := billing.HashKey(c.Value)
	s, err := h.Sessions.GetPortalSession(r.Context(), id)
	if err != nil {
		if errors.Is(err, billing.ErrPortalSessionInvalid) {
			return nil, errNoSession
		}
		h.log().Error("portal: reading a session", zap.Error(err))
		return nil, errUnavailable
	}
	if !s.ExpiresAt.IsZero() && !h.now().Before(s.ExpiresAt) {
		return nil, errNoSession
	}
	return &session{PortalSession: s, id: id}, nil
}

// checkCSRF requires the session's CSRF token (header or form field, compared
// in constant time) and refuses cross-site requests outright.
func (h *Handler) checkCSRF(r *http.Request, s *session) *apiError {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errCSRF
	}
	token := r.Header.Get(CSRFHeader)
	if token == "" {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
		token = r.PostFormValue(CSRFField)
	}
	if token == "" || s.CSRF == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) != 1 {
		return errCSRF
	}
	return nil
}

// maxFormBytes bounds a form's body: the page's forms are a few fields.
const maxFormBytes = 16 << 10

// logout ends the session: POST /billing/logout.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := h.Sessions.DeletePortalSession(r.Context(), s.id); err != nil {
		h.log().Error("portal: deleting a session", zap.String("account", s.Account), zap.Error(err))
	}
	http.SetCookie(w, h.cookie(r, "", -1))
	// The answer is the signed-out page itself, with the session's own Back link
	// (a URL taken from a query string could point anywhere).
	ret := ""
	if safeReturnURL(s.ReturnURL) {
		ret = s.ReturnURL
	}
	h.render(w, http.StatusOK, messagePage{Title: "Signed out", Message: "You are signed out of the Billing page.", ReturnURL: ret})
}

// safeReturnURL accepts only absolute http(s) URLs as a Back link.
func safeReturnURL(u string) bool {
	return strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")
}
