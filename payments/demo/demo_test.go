package demo_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/demo"
)

// fixture is a demo provider mounted on a test server, with a recorder of OnPaid.
type fixture struct {
	p      *demo.Provider
	srv    *httptest.Server
	mu     sync.Mutex
	paid   []payments.Event
	fail   atomic.Bool // OnPaid fails while set
	now    atomic.Pointer[time.Time]
	client *http.Client // follows no redirect
}

func newFixture(t *testing.T, change ...func(*demo.Config)) *fixture {
	t.Helper()
	f := &fixture{client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	cfg := demo.Config{
		BaseURL: f.srv.URL + "/billing/checkout/demo/",
		OnPaid: func(_ context.Context, ev payments.Event) error {
			if f.fail.Load() {
				return errors.New("ledger unavailable")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			f.paid = append(f.paid, ev)
			return nil
		},
		Now: func() time.Time {
			if t := f.now.Load(); t != nil {
				return *t
			}
			return time.Now()
		},
	}
	for _, c := range change {
		c(&cfg)
	}
	p, err := demo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	mux.Handle("/billing/checkout/demo/", p)
	return f
}

func (f *fixture) paidEvents() []payments.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]payments.Event(nil), f.paid...)
}

func (f *fixture) start(t *testing.T, purchase string, save bool) payments.CheckoutSession {
	t.Helper()
	cs, err := f.p.StartCheckout(context.Background(), payments.Checkout{
		PurchaseID: purchase, Account: "acme", Amount: 10 * money.Dollar, SaveCard: save,
		SuccessURL: "https://shop.example/billing/?paid={CHECKOUT_SESSION_ID}", CancelURL: "https://shop.example/billing/",
	})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// do sends a request and returns status, body and headers.
func (f *fixture) do(t *testing.T, method, target string, form url.Values) (int, string, http.Header) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// formURL and token split a checkout URL into the form's target and its token.
func formURL(t *testing.T, checkoutURL string) (string, string) {
	t.Helper()
	u, err := url.Parse(checkoutURL)
	if err != nil {
		t.Fatal(err)
	}
	token := u.Query().Get("token")
	u.RawQuery = ""
	return u.String(), token
}

func TestNew(t *testing.T) {
	onPaid := func(context.Context, payments.Event) error { return nil }
	for _, cfg := range []demo.Config{
		{BaseURL: "", OnPaid: onPaid},
		{BaseURL: "/billing/checkout/demo/", OnPaid: onPaid},
		{BaseURL: "http://localhost:8080/billing/checkout/demo", OnPaid: onPaid},
		{BaseURL: "http://localhost:8080/billing/checkout/demo/"},
		{BaseURL: "http://localhost:8080/billing/checkout/demo/", OnPaid: onPaid, Currency: "jpy"},
	} {
		if _, err := demo.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// The URL carries an unguessable token; starting a purchase again returns the
// same session; other details under its id are refused.
func TestStartCheckout(t *testing.T) {
	f := newFixture(t)
	a := f.start(t, "pur_1", false)
	b := f.start(t, "pur_2", false)
	target, token := formURL(t, a.URL)
	_, tokenB := formURL(t, b.URL)
	if target != f.srv.URL+"/billing/checkout/demo/pur_1" || len(token) < 40 || token == tokenB || !strings.HasPrefix(a.ID, "cs_demo_") {
		t.Errorf("session %+v (token %q)", a, token)
	}
	if a.CustomerID != "cus_demo_acme" || time.Until(a.ExpiresAt) < 59*time.Minute {
		t.Errorf("session %+v", a)
	}
	if again := f.start(t, "pur_1", false); again != a {
		t.Errorf("second start %+v, first %+v", again, a)
	}
	_, err := f.p.StartCheckout(context.Background(), payments.Checkout{PurchaseID: "pur_1", Account: "acme", Amount: 20 * money.Dollar,
		SuccessURL: "https://shop.example/billing/?paid={CHECKOUT_SESSION_ID}", CancelURL: "https://shop.example/billing/"})
	if !errors.Is(err, payments.ErrRejected) {
		t.Errorf("other amount under the same purchase: %v, want ErrRejected", err)
	}
	if _, err := f.p.StartCheckout(context.Background(), payments.Checkout{PurchaseID: "pur_3", Account: "acme", Amount: 1}); !errors.Is(err, payments.ErrInvalid) {
		t.Errorf("bad checkout: %v, want ErrInvalid", err)
	}
}

// The page and its form: shown with the token only, paid once with it, refused
// without it; a second post shows the purchase paid and calls nothing.
func TestCheckoutPage(t *testing.T) {
	f := newFixture(t)
	cs := f.start(t, "pur_1", true)
	other := f.start(t, "pur_2", false)
	target, token := formURL(t, cs.URL)
	_, otherToken := formURL(t, other.URL)

	status, body, h := f.do(t, http.MethodGet, cs.URL, nil)
	if status != 200 || !strings.Contains(body, "nobody is charged") || !strings.Contains(body, "$10.00") || !strings.Contains(body, `id="pay"`) {
		t.Fatalf("page: %d %s", status, body)
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'sha256-", "form-action 'self' https://shop.example", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(body, "<script") {
		t.Errorf("CSP %q / page with script", csp)
	}
	if h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", h)
	}

	for _, tt := range []struct {
		name   string
		method string
		target string
		form   url.Values
		status int
	}{
		{"GET without token", http.MethodGet, target, nil, 404},
		{"GET with a wrong token", http.MethodGet, target + "?token=" + otherToken, nil, 404},
		{"GET of an unknown purchase", http.MethodGet, f.srv.URL + "/billing/checkout/demo/pur_nope?token=" + token, nil, 404},
		{"POST without token", http.MethodPost, target, url.Values{}, 403},
		{"POST with a wrong token", http.MethodPost, target, url.Values{"token": {"x" + token}}, 403},
		{"POST with another purchase's token", http.MethodPost, target, url.Values{"token": {otherToken}}, 403},
		{"PUT", http.MethodPut, cs.URL, nil, 405},
	} {
		if status, body, _ := f.do(t, tt.method, tt.target, tt.form); status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, status, body, tt.status)
		}
	}
	if n := len(f.paidEvents()); n != 0 {
		t.Fatalf("OnPaid called %d times by refused requests", n)
	}

	status, _, h = f.do(t, http.MethodPost, target, url.Values{"token": {token}})
	if status != http.StatusSeeOther || h.Get("Location") != "https://shop.example/billing/?paid="+cs.ID {
		t.Errorf("pay: %d → %q", status, h.Get("Location"))
	}
	want := payments.Event{ID: "evt_demo_pur_1", Kind: payments.CheckoutPaid, Type: "demo.checkout.paid", Account: "acme", PurchaseID: "pur_1",
		CheckoutID: cs.ID, Amount: 10 * money.Dollar, PaymentRef: cs.ID, CustomerID: "cus_demo_acme", PaymentMethodID: demo.CardID}
	paid := f.paidEvents()
	if len(paid) != 1 {
		t.Fatalf("OnPaid called %d times", len(paid))
	}
	got := paid[0]
	if got.Created.IsZero() {
		t.Error("event without a time")
	}
	got.Created = time.Time{}
	if got != want {
		t.Errorf("event %+v\nwant %+v", got, want)
	}

	status, body, _ = f.do(t, http.MethodPost, target, url.Values{"token": {token}})
	if status != 200 || !strings.Contains(body, "already paid") || !strings.Contains(body, `id="paid"`) || strings.Contains(body, `id="pay"`) {
		t.Errorf("second post: %d %s", status, body)
	}
	if _, body, _ := f.do(t, http.MethodGet, cs.URL, nil); !strings.Contains(body, `id="paid"`) {
		t.Errorf("page after paying: %s", body)
	}
	if n := len(f.paidEvents()); n != 1 {
		t.Errorf("OnPaid called %d times after a second post", n)
	}
	card, err := f.p.PaymentMethod(context.Background(), "cus_demo_acme")
	if err != nil || card == nil || card.String() != "Demo card •••• 4242" || card.ID != demo.CardID {
		t.Errorf("saved card %+v %v", card, err)
	}
}

// OnPaid failing leaves the purchase unpaid; pressing Pay again completes it.
// Concurrent posts pay once. An expired checkout cannot be paid.
func TestCheckoutPaymentEdges(t *testing.T) {
	f := newFixture(t)
	cs := f.start(t, "pur_1", false)
	target, token := formURL(t, cs.URL)
	f.fail.Store(true)
	if status, body, _ := f.do(t, http.MethodPost, target, url.Values{"token": {token}}); status != http.StatusBadGateway || !strings.Contains(body, "Nothing was added") {
		t.Errorf("failing OnPaid: %d %s", status, body)
	}
	f.fail.Store(false)
	var wg sync.WaitGroup
	statuses := make([]int, 6)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _, _ = f.do(t, http.MethodPost, target, url.Values{"token": {token}})
		}()
	}
	wg.Wait()
	redirects := 0
	for _, s := range statuses {
		if s == http.StatusSeeOther {
			redirects++
		}
	}
	if n := len(f.paidEvents()); n != 1 || redirects != 1 {
		t.Errorf("concurrent posts: OnPaid succeeded %d times, %d redirects (%v)", n, redirects, statuses)
	}
	if card, _ := f.p.PaymentMethod(context.Background(), "cus_demo_acme"); card != nil {
		t.Errorf("a card saved without consent: %+v", card)
	}

	late := f.start(t, "pur_late", false)
	lateTarget, lateToken := formURL(t, late.URL)
	future := time.Now().Add(demo.DefaultTTL + time.Minute)
	f.now.Store(&future)
	if status, _, _ := f.do(t, http.MethodGet, late.URL, nil); status != http.StatusGone {
		t.Errorf("expired page: %d", status)
	}
	if status, _, _ := f.do(t, http.MethodPost, lateTarget, url.Values{"token": {lateToken}}); status != http.StatusGone {
		t.Errorf("expired post: %d", status)
	}
	if n := len(f.paidEvents()); n != 1 {
		t.Errorf("an expired checkout was paid")
	}
}

// Off-session charges succeed by default, are idempotent by id, and follow the
// Charge hook (decided once per id) in tests.
func TestChargeSaved(t *testing.T) {
	var decided atomic.Int32
	f := newFixture(t, func(c *demo.Config) {
		c.Charge = func(ch payments.Charge) payments.ChargeResult {
			decided.Add(1)
			if ch.Amount > 50*money.Dollar {
				return payments.ChargeResult{Status: payments.ChargeDeclined, PaymentRef: "pi_demo_" + ch.ID, DeclineCode: "insufficient_funds", Reason: "Demo decline."}
			}
			return payments.ChargeResult{Status: payments.ChargeSucceeded, PaymentRef: "pi_demo_" + ch.ID}
		}
	})
	ctx := context.Background()
	c := payments.Charge{ID: "rc_1", Account: "acme", CustomerID: "cus_demo_acme", PaymentMethodID: demo.CardID, Amount: 5 * money.Dollar}
	for range 2 {
		if res, err := f.p.ChargeSaved(ctx, c); err != nil || res.Status != payments.ChargeSucceeded || res.PaymentRef != "pi_demo_rc_1" {
			t.Errorf("charge: %+v %v", res, err)
		}
	}
	big := c
	big.ID, big.Amount = "rc_2", 100*money.Dollar
	if res, err := f.p.ChargeSaved(ctx, big); err != nil || res.Status != payments.ChargeDeclined || res.Reason != "Demo decline." {
		t.Errorf("decline: %+v %v", res, err)
	}
	if decided.Load() != 2 {
		t.Errorf("the hook decided %d times for 2 charges", decided.Load())
	}
	changed := c
	changed.Amount = 6 * money.Dollar
	if _, err := f.p.ChargeSaved(ctx, changed); !errors.Is(err, payments.ErrRejected) {
		t.Errorf("same id, other amount: %v", err)
	}
	wrongCard := c
	wrongCard.ID, wrongCard.PaymentMethodID = "rc_3", "pm_other"
	if _, err := f.p.ChargeSaved(ctx, wrongCard); !errors.Is(err, payments.ErrRejected) {
		t.Errorf("not the demo card: %v", err)
	}
	if _, err := f.p.ParseWebhook(http.Header{}, []byte("{}"), time.Now()); !errors.Is(err, payments.ErrBadSignature) {
		t.Errorf("ParseWebhook: %v", err)
	}
	if id, err := f.p.EnsureCustomer(ctx, "acme", "x@example.com"); err != nil || id != "cus_demo_acme" {
		t.Errorf("EnsureCustomer: %q %v", id, err)
	}
}
