package portal

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/stripestub"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/demo"
	"github.com/creditgate/creditgate/payments/stripe"
)

// testService stands in for the purchase service (billing/purchase) until it is
// merged: Start records a pending purchase and starts the provider's checkout;
// onEvent is the service's event path, crediting a paid purchase once (a grant
// whose id is the purchase id) from the demo page's OnPaid or Stripe's webhook,
// and keeping the customer and card for the card on file.
//
// To run the browser test on the real service, build site with Handler.Purchases
// = an adapter of its Start (portal.StartFunc), History = its PurchaseStore,
// Cards = CardsOnFile{that store, the provider}, demo.Config.OnPaid and the
// /webhooks/stripe route = its event handler; the test's steps stay as they are.
type testService struct {
	*fakePurchases
	store    *redisstore.Store
	provider payments.Provider

	mu       sync.Mutex
	profiles map[string]billing.PaymentProfile
}

func newTestService(store *redisstore.Store) *testService {
	s := &testService{store: store, profiles: map[string]billing.PaymentProfile{}}
	s.fakePurchases = &fakePurchases{
		CheckFunc: limitsOf(store, testPolicy),
		StartFunc: func(ctx context.Context, p billing.Purchase, r StartPurchase) (string, string, error) {
			pp, _ := s.GetPaymentProfile(ctx, r.Account)
			cs, err := s.provider.StartCheckout(ctx, payments.Checkout{PurchaseID: p.ID, Account: p.Account, Amount: p.Amount,
				SaveCard: r.SaveCard, CustomerID: pp.CustomerID, SuccessURL: r.SuccessURL, CancelURL: r.CancelURL})
			if err != nil {
				return "", "", err
			}
			if cs.CustomerID != "" && pp.CustomerID == "" {
				s.setProfile(r.Account, billing.PaymentProfile{Provider: s.provider.Name(), CustomerID: cs.CustomerID})
			}
			return cs.ID, cs.URL, nil
		},
	}
	return s
}

func (s *testService) GetPaymentProfile(_ context.Context, account string) (billing.PaymentProfile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profiles[account], nil
}

func (s *testService) setProfile(account string, pp billing.PaymentProfile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.profiles[account]
	if pp.CustomerID == "" {
		pp.CustomerID = old.CustomerID
	}
	if pp.PaymentMethodID == "" {
		pp.PaymentMethodID = old.PaymentMethodID
	}
	s.profiles[account] = pp
}

// onEvent credits a paid purchase once: the top-up is idempotent by the
// purchase id, then the purchase is marked paid.
func (s *testService) onEvent(ctx context.Context, ev payments.Event) error {
	switch ev.Kind {
	case payments.CheckoutPaid:
		if _, err := s.GetPurchase(ctx, ev.Account, ev.PurchaseID); err != nil {
			return err
		}
		if _, err := s.store.TopUp(ctx, testPolicy, billing.TopUpRequest{Account: ev.Account, GrantID: ev.PurchaseID, Amount: ev.Amount,
			Source: billing.SourcePurchase, SkipLimits: true}); err != nil {
			return err
		}
		s.markPaid(ev.PurchaseID, s.provider.Name(), ev.PaymentRef, ev.Amount)
		if ev.CustomerID != "" || ev.PaymentMethodID != "" {
			s.setProfile(ev.Account, billing.PaymentProfile{Provider: s.provider.Name(), CustomerID: ev.CustomerID, PaymentMethodID: ev.PaymentMethodID})
		}
	case payments.CardSaved:
		s.setProfile(ev.Account, billing.PaymentProfile{Provider: s.provider.Name(), CustomerID: ev.CustomerID, PaymentMethodID: ev.PaymentMethodID})
	}
	return nil
}

// webhook is POST /webhooks/stripe as the service serves it.
func (s *testService) webhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ev, err := s.provider.ParseWebhook(r.Header, body, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.onEvent(r.Context(), ev); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// site is a data-plane listener serving the Billing page with one provider.
type site struct {
	srv     *httptest.Server
	h       *Handler
	service *testService
	stub    *stripestub.Server // provider stripe
}

// newSite serves the page on store and sessions with provider "demo" or "stripe".
func newSite(t *testing.T, store *redisstore.Store, sessions billing.PortalStore, provider string) *site {
	t.Helper()
	s := &site{service: newTestService(store)}
	mux := http.NewServeMux()
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	public, _ := url.Parse(s.srv.URL)
	s.h = &Handler{Sessions: sessions, Ledger: store, Keys: store, Purchases: s.service, History: s.service,
		Provider: provider, Policy: func() billing.Policy { return testPolicy }, PublicURL: public, SessionTTL: time.Hour}
	switch provider {
	case "demo":
		p, err := demo.New(demo.Config{BaseURL: s.srv.URL + DemoCheckoutPath, OnPaid: s.service.onEvent})
		if err != nil {
			t.Fatal(err)
		}
		s.service.provider, s.h.DemoCheckout = p, p
	case "stripe":
		s.stub = stripestub.New(t, stripestub.Options{WebhookURL: s.srv.URL + "/webhooks/stripe"})
		p, err := stripe.New(stripe.Config{SecretKey: s.stub.SecretKey, WebhookSecret: s.stub.WebhookSecret, APIBase: s.stub.URL, NetworkRetries: -1})
		if err != nil {
			t.Fatal(err)
		}
		s.service.provider = p
		s.h.CheckoutOrigin = s.stub.URL
		mux.HandleFunc("POST /webhooks/stripe", s.service.webhook)
	default:
		panic(fmt.Sprintf("provider %q", provider))
	}
	s.h.Cards = CardsOnFile{Profiles: s.service, Provider: s.service.provider}
	s.h.Receipts = s.service.provider
	mux.Handle(Path, s.h)
	return s
}
