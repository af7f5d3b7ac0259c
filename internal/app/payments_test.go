package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/purchase/purchasetest"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/internal/testing/stripestub"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// salesApp is a whole creditgate selling credit: Redis through testredis, the
// mock upstream, and the given payments configuration. Purchases are kept by
// the Redis ledger itself; portal links go to a fake that records them.
type salesApp struct {
	app    *App
	store  *redisstore.Store
	admin  *client.Client
	data   string
	links  *[]billing.PortalLink
	logs   *syncBuffer
	upMock *mockupstream.Server
}

func startSales(t *testing.T, extraYAML string) *salesApp {
	t.Helper()
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	mock := mockupstream.New()
	mock.OutputTokens = 1000
	up := httptest.NewServer(mock)
	t.Cleanup(up.Close)
	doc := fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: { listen: "127.0.0.1:0", tokens: [%q] }
upstream: { base_url: %q }
redis: %s
pricing: %s
%s`, adminToken, up.URL+"/v1", patientRedisSection(r), testPricing, extraYAML)
	cfg, err := config.LoadBytes([]byte(doc), nil)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, doc)
	}
	var links []billing.PortalLink
	portal := &purchasetest.Portal{CreatePortalLinkFunc: func(_ context.Context, _ billing.KeyHash, l billing.PortalLink) error {
		links = append(links, l)
		return nil
	}}
	logs := &syncBuffer{}
	a, err := New(context.Background(), cfg, Options{Logger: jsonLogger(logs), Portal: portal})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if strings.Contains(string(logs.Bytes()), "sk_test_") || strings.Contains(string(logs.Bytes()), "whsec_") {
			t.Error("a log line carries a Stripe secret")
		}
	})
	return &salesApp{app: a, store: store, admin: &client.Client{BaseURL: "http://" + a.AdminAddr().String(), Token: adminToken},
		data: "http://" + a.DataAddr().String(), links: &links, logs: logs, upMock: mock}
}

// forwarder is an HTTP server that passes every request to a target set later:
// the stand-in needs its webhook URL before the App has its address.
func forwarder(t *testing.T) (*httptest.Server, *atomic.Pointer[url.URL]) {
	var target atomic.Pointer[url.URL]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httputil.NewSingleHostReverseProxy(target.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &target
}

// TestStripeWiredFromConfig: with the three Stripe keys (and the stand-in as the
// API), a purchase started through the admin API is paid on Stripe's page, its
// signed event reaches POST /webhooks/stripe on the data plane and credits the
// account once; the saved card then pays an auto-recharge as calls through the
// proxy spend the balance; a refund takes back what is left; the metrics count
// it all; a bad signature is refused.
func TestStripeWiredFromConfig(t *testing.T) {
	fwd, target := forwarder(t)
	stub := stripestub.New(t, stripestub.Options{WebhookURL: fwd.URL + "/webhooks/stripe"})
	s := startSales(t, fmt.Sprintf(`
payments: { provider: stripe, stripe: { secret_key: %q, webhook_secret: %q, api_base: %q } }
portal: { public_url: "https://credit.example.com" }
`, stub.SecretKey, stub.WebhookSecret, stub.URL))
	u, _ := url.Parse(s.data)
	target.Store(u)
	ctx := context.Background()
	if s.app.chargerName() != "stripe" || !s.app.settings.Load().Triggers.AutoRecharge {
		t.Fatalf("charger %q, auto-recharge triggers %v", s.app.chargerName(), s.app.settings.Load().Triggers.AutoRecharge)
	}
	if _, err := s.admin.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	p, err := s.admin.CreatePurchase(ctx, "acme", admin.CreatePurchaseRequest{Amount: "10.00", SaveCard: true}, "order-1")
	if err != nil || !strings.HasPrefix(p.URL, stub.URL) {
		t.Fatalf("CreatePurchase: %+v %v", p, err)
	}
	sessions := stub.CheckoutSessions()
	if len(sessions) != 1 || sessions[0].SuccessURL != "https://credit.example.com/billing/?purchase="+p.ID {
		t.Fatalf("sessions %+v", sessions)
	}
	if _, err := stub.CompleteCheckout(sessions[0].ID, stripestub.Pay{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range stub.Deliveries() {
		if d.Status != http.StatusOK {
			t.Fatalf("delivery %s", d)
		}
	}
	acct, err := s.admin.GetAccount(ctx, "acme")
	if err != nil || acct.Balance != 10_000_000 {
		t.Fatalf("after paying: %+v %v", acct, err)
	}
	list, err := s.admin.ListPurchases(ctx, "acme", 0)
	if err != nil || len(list.Data) != 1 || list.Data[0].Status != "paid" || list.Data[0].PaymentRef == "" {
		t.Fatalf("purchases %+v %v", list, err)
	}

	// Spend through the proxy below the 5.00 threshold: the saved card pays.
	if _, err := s.admin.SetAutoRecharge(ctx, "acme", admin.AutoRechargeRequest{Enabled: true, Threshold: "5.00", Amount: "10.00", MonthlyLimit: "50.00"}); err != nil {
		t.Fatal(err)
	}
	key, err := s.admin.CreateKey(ctx, "acme", "app")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // 1000 output tokens of "dear" cost 2.00
		req, _ := http.NewRequest(http.MethodPost, s.data+"/v1/chat/completions",
			strings.NewReader(`{"model":"dear","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+key.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		acct, err = s.admin.GetAccount(ctx, "acme")
		n := 0
		for _, g := range acct.Grants {
			if g.Source == billing.SourceAutoRecharge {
				n++
			}
		}
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no auto-recharge: %+v %v", acct, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if reqs := stub.RequestsTo(http.MethodPost, "/v1/payment_intents"); len(reqs) != 1 || reqs[0].Form.Get("off_session") != "true" {
		t.Fatalf("off-session charges %+v", reqs)
	}

	// A refund of the purchase takes back what is left of its 10.00.
	before := acct.Balance
	if _, err := stub.Refund(list.Data[0].PaymentRef, 0); err != nil {
		t.Fatal(err)
	}
	if acct, _ = s.admin.GetAccount(ctx, "acme"); acct.Balance >= before {
		t.Fatalf("balance %s after the refund, was %s", acct.Balance, before)
	}

	// A forged delivery is refused.
	resp, err := http.Post(s.data+"/webhooks/stripe", "application/json", bytes.NewReader([]byte(`{"id":"evt_forged"}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged webhook: HTTP %d", resp.StatusCode)
	}

	metrics := scrape(t, "http://"+s.app.AdminAddr().String()+"/metrics")
	for _, want := range []string{
		`creditgate_purchases_total{provider="stripe",status="started"} 1`,
		`creditgate_purchases_total{provider="stripe",status="paid"} 1`,
		`creditgate_credited_micro_usd_total{source="purchase"} 1e+07`,
		`creditgate_auto_recharges_total{charger="stripe",result="paid"} 1`,
		`creditgate_payment_events_total{kind="none",outcome="bad_signature",provider="stripe"} 1`,
		`creditgate_payment_reversals_total{kind="refund"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
		if testing.Verbose() {
			for _, l := range strings.Split(metrics, "\n") {
				if strings.HasPrefix(l, "creditgate_auto") {
					t.Log(l)
				}
			}
		}
	}

	// A Billing page link.
	ses, err := s.admin.CreatePortalSession(ctx, "acme", "")
	if err != nil || !strings.HasPrefix(ses.URL, "https://credit.example.com/billing/login?token=") || len(*s.links) != 1 || (*s.links)[0].Account != "acme" {
		t.Fatalf("portal session %+v %v; links %+v", ses, err, *s.links)
	}
	if !strings.Contains(string(s.logs.Bytes()), `"msg":"payments on"`) {
		t.Error("no start-up line says payments are on")
	}
}

func scrape(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestDemoWiredFromConfig: payments.provider demo (the quickstart's) gives a
// checkout page for the Billing page to mount, whose Pay button credits the
// purchase; the demo card then pays auto-recharges; /webhooks/stripe is not
// served.
func TestDemoWiredFromConfig(t *testing.T) {
	s := startSales(t, `payments: { provider: demo }`)
	ctx := context.Background()
	page := s.app.DemoCheckout()
	if page == nil || s.app.Purchases() == nil || s.app.chargerName() != "demo" {
		t.Fatalf("demo checkout %v, purchases %v, charger %q", page, s.app.Purchases(), s.app.chargerName())
	}
	if _, err := s.admin.CreateAccount(ctx, "demo", ""); err != nil {
		t.Fatal(err)
	}
	p, err := s.admin.CreatePurchase(ctx, "demo", admin.CreatePurchaseRequest{Amount: "10.00", SaveCard: true}, "")
	if err != nil || !strings.Contains(p.URL, DemoCheckoutPath) {
		t.Fatalf("CreatePurchase: %+v %v", p, err)
	}
	srv := httptest.NewServer(page) // as the Billing page mounts it
	defer srv.Close()
	u, _ := url.Parse(p.URL)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(srv.URL+u.Path, url.Values{"token": {u.Query().Get("token")}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if acct, err := s.admin.GetAccount(ctx, "demo"); err != nil || acct.Balance != 10_000_000 {
		t.Fatalf("after Pay: %+v %v", acct, err)
	}
	resp, err = http.Post(s.data+"/webhooks/stripe", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/webhooks/stripe with the demo provider: HTTP %d, want the proxy's 404", resp.StatusCode)
	}
}

// TestPaymentsOff: without a provider, purchases answer 501 and the list is empty.
func TestPaymentsOff(t *testing.T) {
	s := startSales(t, "")
	ctx := context.Background()
	if _, err := s.admin.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	_, err := s.admin.CreatePurchase(ctx, "acme", admin.CreatePurchaseRequest{Amount: "10.00"}, "")
	if e, ok := err.(*client.APIError); !ok || e.Status != http.StatusNotImplemented || e.Code != admin.CodePaymentsDisabled {
		t.Fatalf("CreatePurchase with payments off: %v", err)
	}
	if s.app.chargerName() != "" || s.app.settings.Load().Triggers.AutoRecharge {
		t.Fatal("a charger without a provider or a webhook")
	}
}
