package app

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/purchase"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/portal"
)

// stripeCheckoutOrigin is where Stripe's hosted checkout pages live: the Billing
// page's purchase form may be sent there (its CSP's form-action).
const stripeCheckoutOrigin = "https://checkout.stripe.com"

// newPortal is the customer's Billing page on this instance's store, with the
// purchase service, the purchase history, the card on file and the receipts of
// the configured payment provider (each left out when there is none).
func (a *App) newPortal(cfg *config.Config, sessions billing.PortalStore) *portal.Handler {
	h := &portal.Handler{
		Sessions:   sessions,
		Ledger:     a.reads,
		Keys:       a.store,
		Policy:     func() billing.Policy { return *a.policy.Load() },
		SessionTTL: cfg.Portal.SessionTTL,
		Logger:     a.log.Named("portal"),
	}
	if u, err := url.Parse(cfg.PortalURL()); err == nil {
		h.PublicURL = u
	}
	s := a.sales
	if s.store != nil {
		h.History = s.store
	}
	if s.service != nil && s.provider != nil {
		svc := s.service
		h.Purchases = portal.StartFunc(func(ctx context.Context, r portal.StartPurchase) (billing.Purchase, error) {
			st, err := svc.Start(ctx, purchase.StartRequest{Account: r.Account, ID: r.ID, Amount: r.Amount, SaveCard: r.SaveCard,
				SuccessURL: r.SuccessURL, CancelURL: r.CancelURL, Actor: "portal"})
			return st.Purchase, err
		})
		h.Provider = s.provider.Name()
		h.Receipts = s.provider
		h.Cards = portal.CardsOnFile{Profiles: s.store, Provider: s.provider}
		if h.Provider == config.ProviderStripe {
			h.CheckoutOrigin = stripeCheckoutOrigin
		}
	}
	if s.demo != nil {
		h.DemoCheckout = s.demo
	}
	return h
}

// withPortal serves /billing/ (and /billing) with the Billing page and every
// other path with next.
func withPortal(next, billingPage http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == strings.TrimSuffix(portal.Path, "/") || strings.HasPrefix(r.URL.Path, portal.Path) {
			billingPage.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
