package admin

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/purchase"
	"github.com/creditgate/creditgate/billing/purchase/purchasetest"
	"github.com/creditgate/creditgate/money"
)

// fakePurchases is a Purchases with function fields.
type fakePurchases struct {
	StartFunc func(ctx context.Context, r purchase.StartRequest) (purchase.Started, error)
	ListFunc  func(ctx context.Context, account string, limit int) ([]billing.Purchase, error)
}

func (f *fakePurchases) Start(ctx context.Context, r purchase.StartRequest) (purchase.Started, error) {
	return f.StartFunc(ctx, r)
}

func (f *fakePurchases) List(ctx context.Context, account string, limit int) ([]billing.Purchase, error) {
	return f.ListFunc(ctx, account, limit)
}

var knownAccount = &fakeLedger{GetAccountFunc: func(_ context.Context, id string) (billing.Account, error) {
	if id != "acme" {
		return billing.Account{}, billing.ErrAccountNotFound
	}
	return sampleAccount(), nil
}}

func samplePurchase(r purchase.StartRequest) billing.Purchase {
	return billing.Purchase{ID: "pur_1", Account: r.Account, Amount: r.Amount, Status: billing.PurchasePending, Provider: "stripe",
		SaveCard: r.SaveCard, CheckoutID: "cs_1", CheckoutURL: "https://checkout.stripe.com/c/pay/cs_1",
		CheckoutExpiresAt: time.Date(2025, 3, 2, 12, 0, 0, 0, cet), CreatedAt: time.Date(2025, 3, 1, 13, 0, 0, 0, cet), Actor: r.Actor}
}

var samplePurchaseJSON = `{"id":"pur_1","account":"acme","status":"pending","provider":"stripe","amount":"10.000000","paid_amount":"0.000000",
	"taken_back":"0.000000","save_card":true,"url":"https://checkout.stripe.com/c/pay/cs_1","expires_at":"2025-03-02T11:00:00Z",
	"created_at":"2025-03-01T12:00:00Z","actor":"` + testActor + `"}`

func TestCreatePurchase(t *testing.T) {
	netErr := errors.New("stripe create checkout session: dial tcp: i/o timeout")
	tests := []struct {
		name    string
		target  string
		body    string
		headers []string
		start   func(purchase.StartRequest) (purchase.Started, error)
		nilSvc  bool
		status  int
		want    string    // the body on success
		err     errorCase // on failure
		message string    // substring of the error message
		wantReq purchase.StartRequest
	}{
		{name: "started", body: `{"amount":"10.00","save_card":true}`, status: http.StatusCreated, want: samplePurchaseJSON,
			wantReq: purchase.StartRequest{Account: "acme", Amount: money.MustParse("10"), SaveCard: true, Actor: testActor}},
		{name: "bare number and return URLs", body: `{"amount":10,"save_card":true,"success_url":"https://app.example/ok","cancel_url":"http://localhost:3000/no"}`,
			status: http.StatusCreated, want: samplePurchaseJSON,
			wantReq: purchase.StartRequest{Account: "acme", Amount: money.MustParse("10"), SaveCard: true, Actor: testActor,
				SuccessURL: "https://app.example/ok", CancelURL: "http://localhost:3000/no"}},
		{name: "idempotency key names the purchase", body: `{"amount":"10.00","save_card":true}`, headers: []string{"Idempotency-Key", "order-42"},
			status: http.StatusCreated, want: samplePurchaseJSON,
			wantReq: purchase.StartRequest{Account: "acme", ID: purchase.IDForKey("acme", "order-42"), Amount: money.MustParse("10"), SaveCard: true, Actor: testActor}},
		{name: "replay", body: `{"amount":"10.00","save_card":true}`, headers: []string{"Idempotency-Key", "order-42"},
			start: func(r purchase.StartRequest) (purchase.Started, error) {
				return purchase.Started{Purchase: samplePurchase(r), Replayed: true}, nil
			}, status: http.StatusOK, want: samplePurchaseJSON},
		{name: "no amount", body: `{}`, err: errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}},
		{name: "zero", body: `{"amount":"0"}`, err: errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}},
		{name: "fraction of a cent", body: `{"amount":"10.001"}`, err: errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, message: "whole number of cents"},
		{name: "negative", body: `{"amount":"-5"}`, err: errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}},
		{name: "javascript success URL", body: `{"amount":"10","success_url":"javascript:alert(1)"}`, err: errorCase{400, TypeInvalidRequest, CodeInvalidValue, "success_url"}},
		{name: "relative cancel URL", body: `{"amount":"10","cancel_url":"/billing/"}`, err: errorCase{400, TypeInvalidRequest, CodeInvalidValue, "cancel_url"}},
		{name: "unknown field", body: `{"amount":"10","currency":"eur"}`, err: errorCase{400, TypeInvalidRequest, CodeUnknownField, "currency"}},
		{name: "save_card not a bool", body: `{"amount":"10","save_card":"yes"}`, err: errorCase{400, TypeInvalidRequest, CodeInvalidValue, "save_card"}},
		{name: "bad account id", target: "/admin/v1/accounts/a%7Bb/purchases", body: `{"amount":"10"}`, err: errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "below the minimum", body: `{"amount":"1.00"}`, start: func(purchase.StartRequest) (purchase.Started, error) {
			return purchase.Started{}, &billing.LimitError{Err: billing.ErrBelowMinimum, Limit: money.MustParse("5"), Amount: money.MustParse("1")}
		}, err: errorCase{400, TypeInvalidRequest, CodeBelowMinimum, "amount"}, message: "below the minimum purchase of 5.000000"},
		{name: "above the tier's balance", body: `{"amount":"90.00"}`, start: func(purchase.StartRequest) (purchase.Started, error) {
			return purchase.Started{}, &billing.LimitError{Err: billing.ErrAboveMaxBalance, Limit: money.MustParse("1000"), Amount: money.MustParse("1010")}
		}, err: errorCase{400, TypeInvalidRequest, CodeAboveMaxBalance, "amount"}},
		{name: "unknown account", body: `{"amount":"10"}`, start: func(purchase.StartRequest) (purchase.Started, error) {
			return purchase.Started{}, billing.ErrAccountNotFound
		}, err: errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
		{name: "key reused with another amount", body: `{"amount":"20"}`, headers: []string{"Idempotency-Key", "order-42"},
			start: func(purchase.StartRequest) (purchase.Started, error) {
				return purchase.Started{}, billing.ErrIdempotencyConflict
			}, err: errorCase{409, TypeConflict, CodeIdempotencyConflict, ""}},
		{name: "store down", body: `{"amount":"10"}`, start: func(purchase.StartRequest) (purchase.Started, error) {
			return purchase.Started{}, billing.ErrUnavailable
		}, err: errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""}, message: "retry with the same Idempotency-Key"},
		{name: "provider does not answer", body: `{"amount":"10"}`, start: func(purchase.StartRequest) (purchase.Started, error) {
			return purchase.Started{}, netErr
		}, err: errorCase{503, TypeUnavailable, CodeProviderUnavailable, ""}, message: "retry with the same Idempotency-Key"},
		{name: "provider refuses", body: `{"amount":"10"}`, start: func(purchase.StartRequest) (purchase.Started, error) {
			return purchase.Started{}, errors.Join(purchase.ErrProvider, errors.New("stripe create checkout session: invalid_request_error/amount_too_small"))
		}, err: errorCase{502, TypeBadGateway, CodeProviderRefused, ""}, message: "amount_too_small"},
		{name: "payments off", body: `{"amount":"10"}`, start: func(purchase.StartRequest) (purchase.Started, error) {
			return purchase.Started{}, purchase.ErrPaymentsOff
		}, err: errorCase{501, TypeNotImplemented, CodePaymentsDisabled, ""}},
		{name: "no purchase service", body: `{"amount":"10"}`, nilSvc: true, err: errorCase{501, TypeNotImplemented, CodePaymentsDisabled, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *purchase.StartRequest
			svc := &fakePurchases{StartFunc: func(_ context.Context, r purchase.StartRequest) (purchase.Started, error) {
				got = &r
				if tt.start != nil {
					return tt.start(r)
				}
				return purchase.Started{Purchase: samplePurchase(r)}, nil
			}}
			s := newTestServer(knownAccount, nil)
			if !tt.nilSvc {
				s.Purchases = svc
			}
			target := tt.target
			if target == "" {
				target = "/admin/v1/accounts/acme/purchases"
			}
			rec := call(t, s.Handler(), http.MethodPost, target, tt.body, tt.headers...)
			if tt.want != "" {
				checkJSON(t, rec, tt.status, tt.want)
				if replayed := rec.Header().Get(replayedHeader) == "true"; replayed != (tt.status == http.StatusOK) {
					t.Errorf("Idempotent-Replayed %v on HTTP %d", replayed, tt.status)
				}
			} else {
				checkError(t, rec, tt.err)
				if !strings.Contains(rec.Body.String(), tt.message) {
					t.Errorf("message %s lacks %q", rec.Body, tt.message)
				}
				if strings.Contains(rec.Body.String(), "i/o timeout") {
					t.Errorf("the answer shows the internal error: %s", rec.Body)
				}
			}
			if tt.wantReq != (purchase.StartRequest{}) && (got == nil || *got != tt.wantReq) {
				t.Errorf("Start(%+v), want %+v", got, tt.wantReq)
			}
		})
	}
}

func TestListPurchases(t *testing.T) {
	paid := billing.Purchase{ID: "pur_2", Account: "acme", Amount: money.MustParse("25"), PaidAmount: money.MustParse("25"), TakenBack: money.MustParse("3"),
		Status: billing.PurchaseRefunded, Provider: "stripe", PaymentRef: "pi_1", Reason: "refund", CheckoutURL: "https://dead.example",
		CreatedAt: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), SettledAt: time.Date(2025, 3, 1, 0, 5, 0, 0, time.UTC)}
	pending := samplePurchase(purchase.StartRequest{Account: "acme", Amount: money.MustParse("10"), SaveCard: true, Actor: testActor})
	var gotLimit int
	svc := &fakePurchases{ListFunc: func(_ context.Context, account string, limit int) ([]billing.Purchase, error) {
		gotLimit = limit
		return []billing.Purchase{pending, paid}, nil
	}}
	s := newTestServer(knownAccount, nil)
	s.Purchases = svc
	h := s.Handler()
	want := `{"object":"list","data":[` + samplePurchaseJSON + `,{"id":"pur_2","account":"acme","status":"refunded","provider":"stripe","amount":"25.000000",
		"paid_amount":"25.000000","taken_back":"3.000000","save_card":false,"payment_ref":"pi_1","reason":"refund","created_at":"2025-03-01T00:00:00Z",
		"settled_at":"2025-03-01T00:05:00Z"}]}`
	checkJSON(t, call(t, h, "GET", "/admin/v1/accounts/acme/purchases", ""), http.StatusOK, want)
	if gotLimit != DefaultPurchaseListLimit {
		t.Errorf("limit %d", gotLimit)
	}
	call(t, h, "GET", "/admin/v1/accounts/acme/purchases?limit=5", "")
	if gotLimit != 5 {
		t.Errorf("limit %d, want 5", gotLimit)
	}
	for _, tt := range []struct {
		target string
		err    errorCase
	}{
		{"/admin/v1/accounts/nobody/purchases", errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
		{"/admin/v1/accounts/acme/purchases?limit=0", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{"/admin/v1/accounts/acme/purchases?limit=1001", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{"/admin/v1/accounts/acme/purchases?status=paid", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "status"}},
	} {
		checkError(t, call(t, h, "GET", tt.target, ""), tt.err)
	}
	s.Purchases = nil // payments off: still a list, empty
	checkJSON(t, call(t, s.Handler(), "GET", "/admin/v1/accounts/acme/purchases", ""), http.StatusOK, `{"object":"list","data":[]}`)
}

func TestCreatePortalSession(t *testing.T) {
	type stored struct {
		hash billing.KeyHash
		link billing.PortalLink
	}
	var links []stored
	portal := &purchasetest.Portal{CreatePortalLinkFunc: func(_ context.Context, h billing.KeyHash, l billing.PortalLink) error {
		links = append(links, stored{h, l})
		return nil
	}}
	core, logs := observer.New(zap.DebugLevel)
	s := newTestServer(knownAccount, nil)
	s.Portal, s.PortalURL, s.PortalLinkTTL, s.Logger = portal, "https://credit.example.com", 5*time.Minute, zap.New(core)
	h := s.Handler()

	var tokens []string
	for _, body := range []string{"", `{"return_url":"https://app.example/account"}`} {
		rec := call(t, h, "POST", "/admin/v1/accounts/acme/portal-sessions", body)
		if rec.Code != http.StatusCreated {
			t.Fatalf("HTTP %d %s", rec.Code, rec.Body)
		}
		var got PortalSession
		decodeJSON(t, rec.Body.Bytes(), &got)
		u, err := url.Parse(got.URL)
		if err != nil || u.Scheme+"://"+u.Host+u.Path != "https://credit.example.com/billing/login" || len(u.Query()) != 1 {
			t.Fatalf("url %q", got.URL)
		}
		token := u.Query().Get("token")
		if len(token) < 43 || !got.ExpiresAt.Equal(testNow.Add(5*time.Minute)) {
			t.Fatalf("token %q, expires %s", token, got.ExpiresAt)
		}
		tokens = append(tokens, token)
	}
	if tokens[0] == tokens[1] {
		t.Fatal("two links with one token")
	}
	if len(links) != 2 || links[0].hash != sha256.Sum256([]byte(tokens[0])) || links[1].hash != billing.HashKey(tokens[1]) {
		t.Fatal("the store did not get the tokens' SHA-256")
	}
	want := billing.PortalLink{Account: "acme", ReturnURL: "https://app.example/account", ExpiresAt: testNow.Add(5 * time.Minute), Actor: testActor}
	if links[1].link != want || links[0].link.ReturnURL != "" {
		t.Fatalf("stored links %+v, want the second %+v", links, want)
	}
	for _, entry := range logs.All() {
		for _, tok := range tokens {
			if strings.Contains(entry.Message, tok) || strings.Contains(strings.Join(fieldStrings(entry), " "), tok) {
				t.Fatalf("the log has a token: %+v", entry)
			}
		}
	}

	portal.CreatePortalLinkFunc = func(context.Context, billing.KeyHash, billing.PortalLink) error { return billing.ErrUnavailable }
	for _, tt := range []struct {
		name, target, body string
		nilPortal          bool
		err                errorCase
	}{
		{"unknown account", "/admin/v1/accounts/nobody/portal-sessions", "", false, errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
		{"javascript return URL", "/admin/v1/accounts/acme/portal-sessions", `{"return_url":"javascript:alert(1)"}`, false, errorCase{400, TypeInvalidRequest, CodeInvalidValue, "return_url"}},
		{"unknown field", "/admin/v1/accounts/acme/portal-sessions", `{"account":"other"}`, false, errorCase{400, TypeInvalidRequest, CodeUnknownField, "account"}},
		{"store down", "/admin/v1/accounts/acme/portal-sessions", "", false, errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""}},
		{"no portal", "/admin/v1/accounts/acme/portal-sessions", "", true, errorCase{501, TypeNotImplemented, CodePortalDisabled, ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(knownAccount, nil)
			s.Portal, s.PortalURL = portal, "https://credit.example.com"
			if tt.nilPortal {
				s.Portal = nil
			}
			checkError(t, call(t, s.Handler(), "POST", tt.target, tt.body), tt.err)
		})
	}
}

// The new routes need the admin token too.
func TestPurchaseRoutesNeedTheAdminToken(t *testing.T) {
	s := newTestServer(knownAccount, nil)
	s.Portal, s.Purchases = &purchasetest.Portal{}, &fakePurchases{}
	for _, target := range []string{"POST /admin/v1/accounts/acme/purchases", "GET /admin/v1/accounts/acme/purchases", "POST /admin/v1/accounts/acme/portal-sessions"} {
		method, path, _ := strings.Cut(target, " ")
		if rec := call(t, s.Handler(), method, path, `{"amount":"10"}`, "Authorization", "Bearer wrong"); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s without the token: HTTP %d", target, rec.Code)
		}
	}
}

func fieldStrings(e observer.LoggedEntry) []string {
	var out []string
	for k, v := range e.ContextMap() {
		out = append(out, k, toString(v))
	}
	return out
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}
