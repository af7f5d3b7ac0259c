package admin

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// DefaultPortalLinkTTL is Server.PortalLinkTTL's default (portal.link_ttl).
const DefaultPortalLinkTTL = 10 * time.Minute

// PortalLoginPath is the Billing page's path that redeems a link's token.
const PortalLoginPath = "/billing/login"

// portalTokenBytes of randomness make a link's token (256 bits).
const portalTokenBytes = 32

// createPortalSession mints a single-use link to the account's Billing page:
// a random token, of which only the SHA-256 is stored (PortalStore), in
// <portal.public_url>/billing/login?token=…. The token is in the answer only:
// neither the store nor the log ever holds it.
func (s *Server) createPortalSession(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	var body CreatePortalSessionRequest
	if e := decodeBody(r, &body, true); e != nil {
		return e
	}
	if body.ReturnURL != "" {
		if e := checkReturnURL(body.ReturnURL, "return_url"); e != nil {
			return e
		}
	}
	if s.Portal == nil {
		return &apiError{status: http.StatusNotImplemented, typ: TypeNotImplemented, code: CodePortalDisabled,
			message: "the Billing page is not available on this server"}
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	if _, err := ledger.GetAccount(r.Context(), id); err != nil {
		return storeError(err)
	}
	raw := make([]byte, portalTokenBytes)
	rand.Read(raw) // never fails (see billing.NewID)
	token := base64.RawURLEncoding.EncodeToString(raw)
	ttl := s.PortalLinkTTL
	if ttl <= 0 {
		ttl = DefaultPortalLinkTTL
	}
	expires := s.now().Add(ttl).UTC().Truncate(time.Second)
	if err := s.Portal.CreatePortalLink(r.Context(), billing.HashKey(token), billing.PortalLink{
		Account: id, ReturnURL: body.ReturnURL, ExpiresAt: expires, Actor: actor(r),
	}); err != nil {
		return storeError(err)
	}
	link := s.PortalURL + PortalLoginPath + "?" + url.Values{"token": {token}}.Encode()
	writeJSON(w, http.StatusCreated, PortalSession{URL: link, ExpiresAt: expires})
	return nil
}
