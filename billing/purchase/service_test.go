package purchase

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/purchase/purchasetest"
	"github.com/creditgate/creditgate/billing/recharge"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/stripemock"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/demo"
	"github.com/creditgate/creditgate/payments/paymentstest"
	"github.com/creditgate/creditgate/payments/stripe"
)

// fakeFlow is a Service over fakes: a store that knows one pending purchase
// "pur_1" of account "acme" and records what is asked of it, and a provider.
type fakeFlow struct {
	store    *purchasetest.Store
	provider *paymentstest.Provider
	svc      *Service
	logs     *observer.ObservedLogs
	calls    []string
	profile  billing.PaymentProfile
	status   billing.PurchaseStatus
}

func newFakeFlow(t *testing.T) *fakeFlow {
	f := &fakeFlow{status: billing.PurchasePending}
	pending := func() billing.Purchase {
		return billing.Purchase{ID: "pur_1", Account: "acme", Amount: usd("10.00"), Status: f.status, Provider: "fake"}
	}
	f.store = &purchasetest.Store{
		GetPurchaseFunc: func(_ context.Context, account, id string) (billing.Purchase, error) {
			if account != "acme" || id != "pur_1" {
				return billing.Purchase{}, billing.ErrPurchaseNotFound
			}
			return pending(), nil
		},
		CreatePurchaseFunc: func(_ context.Context, _ billing.Policy, r billing.NewPurchaseRequest) (billing.Purchase, error) {
			f.calls = append(f.calls, "create "+r.ID)
			return billing.Purchase{ID: r.ID, Account: r.Account, Amount: r.Amount, Status: f.status, Provider: r.Provider, SaveCard: r.SaveCard}, nil
		},
		AttachCheckoutFunc: func(_ context.Context, account, id, checkoutID, u string, exp time.Time) (billing.Purchase, error) {
			f.calls = append(f.calls, "attach "+checkoutID)
			p := pending()
			p.ID, p.CheckoutID, p.CheckoutURL, p.CheckoutExpiresAt = id, checkoutID, u, exp
			return p, nil
		},
		EndPurchaseFunc: func(_ context.Context, account, id string, status billing.PurchaseStatus, reason string) (billing.Purchase, error) {
			f.calls = append(f.calls, "end "+string(status)+": "+reason)
			p := pending()
			p.Status = status
			return p, nil
		},
		GetPaymentProfileFunc: func(context.Context, string) (billing.PaymentProfile, error) { return f.profile, nil },
		SetPaymentProfileFunc: func(_ context.Context, _ string, pp billing.PaymentProfile) error {
			f.calls = append(f.calls, "profile "+pp.Provider+" "+pp.CustomerID+" "+pp.PaymentMethodID)
			f.profile = pp
			return nil
		},
	}
	f.provider = &paymentstest.Provider{
		EnsureCustomerFunc: func(_ context.Context, account, _ string) (string, error) {
			f.calls = append(f.calls, "ensure "+account)
			return "cus_" + account, nil
		},
		StartCheckoutFunc: func(_ context.Context, c payments.Checkout) (payments.CheckoutSession, error) {
			f.calls = append(f.calls, "checkout "+c.PurchaseID+" "+c.CustomerID)
			return payments.CheckoutSession{ID: "cs_1", URL: "https://pay.example/cs_1", ExpiresAt: time.Now().Add(time.Hour), CustomerID: c.CustomerID}, nil
		},
	}
	core, logs := observer.New(zap.DebugLevel)
	f.logs = logs
	f.svc = &Service{Store: f.store, Provider: f.provider, Policy: func() billing.Policy { return testPolicy },
		PublicURL: "https://credit.example/", Logger: zap.New(core)}
	return f
}

func TestStartSteps(t *testing.T) {
	tests := []struct {
		name      string
		prepare   func(f *fakeFlow)
		req       StartRequest
		wantErr   error // nil: success
		wantCalls []string
	}{
		{name: "first purchase creates the customer",
			req:       StartRequest{Account: "acme", ID: "pur_new", Amount: usd("10.00")},
			wantCalls: []string{"create pur_new", "ensure acme", "profile fake cus_acme ", "checkout pur_new cus_acme", "attach cs_1"}},
		{name: "a known customer is reused",
			prepare: func(f *fakeFlow) {
				f.profile = billing.PaymentProfile{Provider: "fake", CustomerID: "cus_known", PaymentMethodID: "pm_1"}
			},
			req:       StartRequest{Account: "acme", ID: "pur_new", Amount: usd("10.00")},
			wantCalls: []string{"create pur_new", "checkout pur_new cus_known", "attach cs_1"}},
		{name: "another provider's customer is replaced and its card dropped",
			prepare: func(f *fakeFlow) {
				f.profile = billing.PaymentProfile{Provider: "demo", CustomerID: "cus_demo_acme", PaymentMethodID: "pm_demo_4242"}
			},
			req:       StartRequest{Account: "acme", ID: "pur_new", Amount: usd("10.00")},
			wantCalls: []string{"create pur_new", "ensure acme", "profile fake cus_acme ", "checkout pur_new cus_acme", "attach cs_1"}},
		{name: "a retry of a started purchase",
			prepare: func(f *fakeFlow) {
				f.store.CreatePurchaseFunc = func(context.Context, billing.Policy, billing.NewPurchaseRequest) (billing.Purchase, error) {
					f.calls = append(f.calls, "create pur_1")
					return billing.Purchase{ID: "pur_1", Account: "acme", Status: billing.PurchasePending, CheckoutURL: "https://pay.example/cs_1"}, nil
				}
			},
			req: StartRequest{Account: "acme", ID: "pur_1", Amount: usd("10.00")}, wantCalls: []string{"create pur_1"}},
		{name: "the provider refuses: the purchase fails",
			prepare: func(f *fakeFlow) {
				f.provider.StartCheckoutFunc = func(context.Context, payments.Checkout) (payments.CheckoutSession, error) {
					return payments.CheckoutSession{}, errors.Join(payments.ErrRejected, errors.New("amount_too_small"))
				}
			},
			req: StartRequest{Account: "acme", ID: "pur_new", Amount: usd("10.00")}, wantErr: ErrProvider,
			wantCalls: []string{"create pur_new", "ensure acme", "profile fake cus_acme ", "end failed: the payment provider refused the checkout: payments: rejected by the provider\namount_too_small"}},
		{name: "the provider does not answer: the purchase stays pending",
			prepare: func(f *fakeFlow) {
				f.provider.StartCheckoutFunc = func(context.Context, payments.Checkout) (payments.CheckoutSession, error) {
					return payments.CheckoutSession{}, context.DeadlineExceeded
				}
			},
			req: StartRequest{Account: "acme", ID: "pur_new", Amount: usd("10.00")}, wantErr: context.DeadlineExceeded,
			wantCalls: []string{"create pur_new", "ensure acme", "profile fake cus_acme "}},
		{name: "a limit", prepare: func(f *fakeFlow) {
			f.store.CreatePurchaseFunc = func(context.Context, billing.Policy, billing.NewPurchaseRequest) (billing.Purchase, error) {
				return billing.Purchase{}, &billing.LimitError{Err: billing.ErrBelowMinimum, Limit: usd("5.00"), Amount: usd("1.00")}
			}
		}, req: StartRequest{Account: "acme", ID: "pur_new", Amount: usd("1.00")}, wantErr: billing.ErrBelowMinimum},
		{name: "a relative return URL", req: StartRequest{Account: "acme", Amount: usd("10.00"), SuccessURL: "/thanks"}, wantErr: billing.ErrInvalid},
		{name: "a bad account", req: StartRequest{Account: "a b", Amount: usd("10.00")}, wantErr: billing.ErrInvalid},
		{name: "payments off", prepare: func(f *fakeFlow) { f.svc.Provider = nil },
			req: StartRequest{Account: "acme", Amount: usd("10.00")}, wantErr: ErrPaymentsOff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeFlow(t)
			if tt.prepare != nil {
				tt.prepare(f)
			}
			st, err := f.svc.Start(context.Background(), tt.req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Start: %v, want %v", err, tt.wantErr)
				}
			} else if err != nil || st.Purchase.CheckoutURL != "https://pay.example/cs_1" {
				t.Fatalf("Start: %+v %v", st, err)
			}
			if strings.Join(f.calls, "|") != strings.Join(tt.wantCalls, "|") {
				t.Fatalf("calls\n%q\nwant\n%q", f.calls, tt.wantCalls)
			}
		})
	}
}

// The default return addresses are the Billing page on portal.public_url.
func TestStartDefaultReturnURLs(t *testing.T) {
	f := newFakeFlow(t)
	var got payments.Checkout
	f.provider.StartCheckoutFunc = func(_ context.Context, c payments.Checkout) (payments.CheckoutSession, error) {
		got = c
		return payments.CheckoutSession{ID: "cs_1", URL: "https://pay.example/cs_1"}, nil
	}
	if _, err := f.svc.Start(context.Background(), StartRequest{Account: "acme", ID: "pur_x", Amount: usd("10.00"), SaveCard: true}); err != nil {
		t.Fatal(err)
	}
	if got.SuccessURL != "https://credit.example/billing/?purchase=pur_x" || got.CancelURL != "https://credit.example/billing/" || !got.SaveCard {
		t.Fatalf("checkout %+v", got)
	}
	if IDForKey("acme", "k1") != IDForKey("acme", "k1") || IDForKey("acme", "k1") == IDForKey("acme", "k2") ||
		IDForKey("acme", "k1") == IDForKey("acme2", "k1") || !regexp.MustCompile(`^pur_[0-9a-f]{24}$`).MatchString(IDForKey("a", "k")) {
		t.Fatal("IDForKey is not one id per account and key")
	}
}

// TestHandleEventErrors: what a store failure, an unknown purchase and each kind
// come to, through the webhook's status codes.
func TestHandleEventErrors(t *testing.T) {
	paid := payments.Event{ID: "evt_1", Kind: payments.CheckoutPaid, Type: "checkout.session.completed", Account: "acme", PurchaseID: "pur_1", Amount: usd("10.00"), PaymentRef: "pi_1"}
	tests := []struct {
		name    string
		ev      payments.Event
		store   func(s *purchasetest.Store)
		status  int
		outcome Outcome
		level   string
	}{
		{"store down", paid, func(s *purchasetest.Store) {
			s.CompletePurchaseFunc = func(context.Context, billing.Policy, string, string, billing.PaymentReport) (billing.TopUpResult, error) {
				return billing.TopUpResult{}, billing.ErrUnavailable
			}
		}, http.StatusServiceUnavailable, Failed, "error"},
		{"unknown purchase", paid, func(s *purchasetest.Store) {
			s.CompletePurchaseFunc = func(context.Context, billing.Policy, string, string, billing.PaymentReport) (billing.TopUpResult, error) {
				return billing.TopUpResult{}, billing.ErrPurchaseNotFound
			}
		}, http.StatusOK, Unknown, "error"},
		{"credited", paid, func(s *purchasetest.Store) {
			s.CompletePurchaseFunc = func(_ context.Context, _ billing.Policy, account, id string, r billing.PaymentReport) (billing.TopUpResult, error) {
				if account != "acme" || id != "pur_1" || r.Amount != usd("10.00") || r.PaymentRef != "pi_1" || r.EventID != "evt_1" || r.PaymentMethodID != "" {
					return billing.TopUpResult{}, errors.New("wrong report")
				}
				return billing.TopUpResult{Grant: billing.Grant{ID: id, Amount: r.Amount}}, nil
			}
		}, http.StatusOK, Credited, "info"},
		{"expired while pending", payments.Event{ID: "evt_2", Kind: payments.CheckoutExpired, Account: "acme", PurchaseID: "pur_1"}, nil, http.StatusOK, Ended, "info"},
		{"pending", payments.Event{ID: "evt_3", Kind: payments.CheckoutPending, Account: "acme", PurchaseID: "pur_1"}, nil, http.StatusOK, Waiting, "info"},
		{"ignored", payments.Event{ID: "evt_4", Kind: payments.Ignored, Type: "customer.created"}, nil, http.StatusOK, Ignored, "info"},
		{"recharge without a worker", payments.Event{ID: "evt_5", Kind: payments.RechargeSucceeded, Account: "acme", RechargeID: "rc_1"}, nil, http.StatusServiceUnavailable, Failed, "error"},
		{"refund of another integration's payment", payments.Event{ID: "evt_6", Kind: payments.Refunded, PaymentRef: "pi_other", Amount: usd("1.00")}, func(s *purchasetest.Store) {
			s.TakeBackFunc = func(context.Context, billing.TakeBackRequest) (billing.TakeBackResult, error) {
				return billing.TakeBackResult{}, billing.ErrPaymentNotFound
			}
		}, http.StatusOK, Unknown, "warn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeFlow(t)
			if tt.store != nil {
				tt.store(f.store)
			}
			f.provider.ParseWebhookFunc = func(http.Header, []byte, time.Time) (payments.Event, error) { return tt.ev, nil }
			srv := httptest.NewServer(f.svc.Webhook())
			defer srv.Close()
			resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("HTTP %d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if strings.Contains(string(body), "unavailable") {
				t.Fatalf("the answer shows an internal error: %s", body)
			}
			lines := f.logs.All()
			if len(lines) != 1 || lines[0].ContextMap()["outcome"] != string(tt.outcome) || lines[0].Level.String() != tt.level {
				t.Fatalf("log lines %+v, want one %s line with outcome %s", lines, tt.level, tt.outcome)
			}
		})
	}
}

func TestWebhookRefusesBadRequests(t *testing.T) {
	f := newFakeFlow(t)
	f.provider.ParseWebhookFunc = func(h http.Header, body []byte, _ time.Time) (payments.Event, error) {
		if h.Get("Stripe-Signature") == "" {
			return payments.Event{}, errors.Join(payments.ErrBadSignature, errors.New("no Stripe-Signature"))
		}
		return payments.Event{}, errors.Join(payments.ErrInvalidEvent, errors.New("api_version 2020-08-27"))
	}
	srv := httptest.NewServer(f.svc.Webhook())
	defer srv.Close()
	do := func(method string, body []byte, sig string) int {
		req, _ := http.NewRequest(method, srv.URL, bytes.NewReader(body))
		if sig != "" {
			req.Header.Set("Stripe-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := do(http.MethodGet, nil, ""); st != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", st)
	}
	if st := do(http.MethodPost, bytes.Repeat([]byte("x"), MaxWebhookBytes+1), "t=1,v1=x"); st != http.StatusRequestEntityTooLarge {
		t.Errorf("over the limit: %d", st)
	}
	if st := do(http.MethodPost, []byte(`{}`), ""); st != http.StatusBadRequest {
		t.Errorf("bad signature: %d", st)
	}
	if st := do(http.MethodPost, []byte(`{}`), "t=1,v1=x"); st != http.StatusBadRequest {
		t.Errorf("unusable event: %d", st)
	}
	if n := len(f.logs.FilterLevelExact(zap.ErrorLevel).FilterMessageSnippet("cannot use").All()); n != 1 {
		t.Errorf("%d error lines for the unusable event, want 1", n)
	}
}

// TestDemoFlow: with the demo provider, the checkout page's Pay button credits
// the purchase through the service, once.
func TestDemoFlow(t *testing.T) {
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.CreateAccount(ctx, "demo", "tier-1"); err != nil {
		t.Fatal(err)
	}
	purchases := store
	svc := &Service{Store: purchases, Policy: func() billing.Policy { return testPolicy }}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	svc.PublicURL = srv.URL
	p, err := demo.New(demo.Config{BaseURL: srv.URL + "/billing/checkout/demo/", OnPaid: svc.OnPaid})
	if err != nil {
		t.Fatal(err)
	}
	svc.Provider = p
	mux.Handle("/billing/checkout/demo/", p)
	mux.HandleFunc("/billing/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "billing page") })

	st, err := svc.Start(ctx, StartRequest{Account: "demo", Amount: usd("10.00"), SaveCard: true, Actor: "portal"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(st.Purchase.CheckoutURL)
	for i := 0; i < 2; i++ { // a second press pays nothing more
		resp, err := http.PostForm(srv.URL+u.Path, url.Values{"token": {u.Query().Get("token")}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("pay #%d: HTTP %d", i+1, resp.StatusCode)
		}
	}
	a, _ := store.GetAccount(ctx, "demo")
	got, _ := purchases.GetPurchase(ctx, "demo", st.Purchase.ID)
	profile, _ := purchases.GetPaymentProfile(ctx, "demo")
	if a.Balance() != usd("10.00") || got.Status != billing.PurchasePaid || profile.PaymentMethodID != demo.CardID || profile.Provider != "demo" {
		t.Fatalf("balance %s, purchase %s, profile %+v", a.Balance(), got.Status, profile)
	}
}

// TestAgainstStripeMock: every Stripe call the service and the provider charger
// make (customer search and creation, checkout, the off-session charge) passes
// Stripe's own OpenAPI validation in stripe-mock.
func TestAgainstStripeMock(t *testing.T) {
	m := stripemock.Start(t)
	p, err := stripe.New(stripe.Config{SecretKey: m.SecretKey, WebhookSecret: "whsec_mock", APIBase: m.URL})
	if err != nil {
		t.Fatal(err)
	}
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.CreateAccount(ctx, "mock", "tier-1"); err != nil {
		t.Fatal(err)
	}
	purchases := store
	svc := &Service{Store: purchases, Provider: p, Policy: func() billing.Policy { return testPolicy }, PublicURL: "https://credit.example"}
	for _, save := range []bool{false, true} {
		st, err := svc.Start(ctx, StartRequest{Account: "mock", Amount: usd("10.00"), SaveCard: save})
		if err != nil || st.Purchase.CheckoutID == "" {
			t.Fatalf("Start(save %v) against stripe-mock: %+v %v", save, st, err)
		}
	}
	profile, err := purchases.GetPaymentProfile(ctx, "mock")
	if err != nil || profile.CustomerID == "" {
		t.Fatalf("profile %+v %v", profile, err)
	}
	profile.PaymentMethodID = "pm_card_visa"
	if err := purchases.SetPaymentProfile(ctx, "mock", profile); err != nil {
		t.Fatal(err)
	}
	charger := rechargeCharger(p, purchases)
	pay, err := charger.Charge(ctx, billing.Recharge{ID: "rc_mock_1", Account: "mock", Amount: usd("5.00"), StartedAt: time.Now(), Drives: 1})
	if err != nil || pay.Result == "" {
		t.Fatalf("ProviderCharger.Charge against stripe-mock: %+v %v", pay, err)
	}
}

func rechargeCharger(p payments.Provider, profiles recharge.Profiles) *recharge.ProviderCharger {
	return &recharge.ProviderCharger{Provider: p, Profiles: profiles}
}
