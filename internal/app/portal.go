package app

import (
	"net/http"
	"strings"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/portal"
)

// newPortal is the customer's Billing page on this instance's store. Until the
// configuration has the portal and payments keys and the purchase service is
// wired, it serves the page without purchases (no "Add to credit balance"),
// answers on the request's own host (no portal.public_url) and keeps sessions
// portal.DefaultSessionTTL.
func (a *App) newPortal(sessions billing.PortalStore) *portal.Handler {
	return &portal.Handler{
		Sessions: sessions,
		Ledger:   a.store,
		Keys:     a.store,
		Policy:   func() billing.Policy { return *a.policy.Load() },
		Logger:   a.log.Named("portal"),
	}
}

// withPortal serves /billing/ (and /billing) with the Billing page and every
// other path with the proxy.
func withPortal(proxy, billingPage http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == strings.TrimSuffix(portal.Path, "/") || strings.HasPrefix(r.URL.Path, portal.Path) {
			billingPage.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}
