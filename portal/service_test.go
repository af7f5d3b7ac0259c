package portal

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/purchase"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/stripestub"
	"github.com/creditgate/creditgate/payments/demo"
	"github.com/creditgate/creditgate/payments/stripe"
)

// site is a data-plane listener serving the Billing page with one provider, on
// the real purchase service (billing/purchase) over the Redis store, wired as
// internal/app wires it: the demo page's Pay and Stripe's webhook both reach the
// service's event path.
type site struct {
	srv     *httptest.Server
	h       *Handler
	service *purchase.Service
	stub    *stripestub.Server // provider stripe
}

// newSite serves the page on store and sessions with provider "demo" or "stripe".
func newSite(t *testing.T, store *redisstore.Store, sessions billing.PortalStore, provider string) *site {
	t.Helper()
	s := &site{}
	mux := http.NewServeMux()
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	public, _ := url.Parse(s.srv.URL)
	s.service = &purchase.Service{Store: store, Policy: func() billing.Policy { return testPolicy }, PublicURL: s.srv.URL}
	svc := s.service
	s.h = &Handler{Sessions: sessions, Ledger: store, Keys: store, History: store,
		Purchases: StartFunc(func(ctx context.Context, r StartPurchase) (billing.Purchase, error) {
			st, err := svc.Start(ctx, purchase.StartRequest{Account: r.Account, ID: r.ID, Amount: r.Amount, SaveCard: r.SaveCard,
				SuccessURL: r.SuccessURL, CancelURL: r.CancelURL, Actor: "portal"})
			return st.Purchase, err
		}),
		Provider: provider, Policy: func() billing.Policy { return testPolicy }, PublicURL: public, SessionTTL: time.Hour}
	switch provider {
	case "demo":
		p, err := demo.New(demo.Config{BaseURL: s.srv.URL + DemoCheckoutPath, OnPaid: svc.OnPaid})
		if err != nil {
			t.Fatal(err)
		}
		svc.Provider, s.h.DemoCheckout = p, p
	case "stripe":
		s.stub = stripestub.New(t, stripestub.Options{WebhookURL: s.srv.URL + purchase.WebhookPath})
		p, err := stripe.New(stripe.Config{SecretKey: s.stub.SecretKey, WebhookSecret: s.stub.WebhookSecret, APIBase: s.stub.URL, NetworkRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		svc.Provider = p
		s.h.CheckoutOrigin = s.stub.URL
		mux.Handle("POST "+purchase.WebhookPath, svc.Webhook())
	default:
		panic(fmt.Sprintf("provider %q", provider))
	}
	s.h.Cards = CardsOnFile{Profiles: store, Provider: svc.Provider}
	s.h.Receipts = svc.Provider
	mux.Handle(Path, s.h)
	return s
}
