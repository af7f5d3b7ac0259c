package admin

import (
	"net/http"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/portal"
)

// DefaultPortalLinkTTL is Server.PortalLinkTTL's default (portal.link_ttl).
const DefaultPortalLinkTTL = 10 * time.Minute

// createPortalSession mints a single-use link to the account's Billing page
// (portal.NewLink: a random token, of which only the SHA-256 is stored, in
// <portal.public_url>/billing/login?token=…). The token is in the answer only:
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
	ttl := s.PortalLinkTTL
	if ttl <= 0 {
		ttl = DefaultPortalLinkTTL
	}
	expires := s.now().Add(ttl).UTC().Truncate(time.Second)
	link, err := portal.NewLink(r.Context(), s.Portal, s.PortalURL, billing.PortalLink{
		Account: id, ReturnURL: body.ReturnURL, ExpiresAt: expires, Actor: actor(r),
	})
	if err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusCreated, PortalSession{URL: link, ExpiresAt: expires})
	return nil
}
