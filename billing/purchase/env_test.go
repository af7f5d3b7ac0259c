package purchase

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/recharge"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/stripestub"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/notify"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/stripe"
)

var usd = money.MustParse

var testPolicy = billing.Policy{
	MinPurchase: usd("5.00"), Grace: usd("0.50"), CreditTTL: 365 * 24 * time.Hour, HoldTTL: time.Minute,
	DefaultTier: "tier-1", Tiers: map[string]billing.Tier{"tier-1": {MaxTopUp: usd("100.00"), MaxBalance: usd("1000.00")}},
	AutoRechargeMin: usd("5.00"),
}

// clock is the store's and the worker's settable clock. Stripe's stand-in and the
// webhook's signature check keep real time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recorder is an Observer and a recharge.Observer that keeps every call.
type recorder struct {
	mu     sync.Mutex
	calls  []string
	events map[Outcome]int
}

func (r *recorder) add(s string) { r.mu.Lock(); r.calls = append(r.calls, s); r.mu.Unlock() }
func (r *recorder) PurchaseStarted(provider string, amount money.Micros) {
	r.add("started " + provider + " " + amount.String())
}
func (r *recorder) PurchaseEnded(provider string, status billing.PurchaseStatus, amount money.Micros) {
	r.add("ended " + provider + " " + string(status) + " " + amount.String())
}
func (r *recorder) Event(provider string, kind payments.EventKind, outcome Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		r.events = map[Outcome]int{}
	}
	r.events[outcome]++
}
func (r *recorder) TakenBack(provider string, kind payments.EventKind, taken, short money.Micros) {
	r.add("taken " + provider + " " + string(kind) + " " + taken.String() + " short " + short.String())
}
func (r *recorder) RechargeDone(rep recharge.Report) {
	r.add("recharge " + rep.Charger + " " + string(rep.Result))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func (r *recorder) outcomes(o Outcome) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[o]
}

// notices is a recharge.Sender that keeps the notices it is given.
type notices struct {
	mu   sync.Mutex
	sent []notify.Message
}

func (n *notices) Send(_ context.Context, m notify.Message) error {
	n.mu.Lock()
	n.sent = append(n.sent, m)
	n.mu.Unlock()
	return nil
}
func (n *notices) MaxDuration() time.Duration { return time.Second }
func (n *notices) bodies() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, m := range n.sent {
		out = append(out, string(m.Body))
	}
	return out
}

// stripeEnv is the whole flow against Stripe's stand-in: the ledger on a test
// Redis, the purchase store, the Stripe provider on the stand-in, the service
// with its webhook endpoint on a real HTTP server (to which the stand-in
// delivers its signed events), and the recharge worker charging saved cards.
type stripeEnv struct {
	ctx       context.Context
	clock     *clock
	store     *redisstore.Store
	purchases billing.PurchaseStore
	stub      *stripestub.Server
	provider  *stripe.Provider
	svc       *Service
	worker    *recharge.Worker
	webhook   string // the endpoint's URL
	manual    bool   // the test posts the stand-in's events itself
	seen      *recorder
	notices   *notices
	logs      *observer.ObservedLogs
}

// envConfig adjusts a stripeEnv.
type envConfig struct {
	// manual: the stand-in does not deliver its events; the test posts them.
	manual bool
	stripe []func(*stripe.Config)
}

type envOption func(*envConfig)

// manualDelivery keeps the stand-in's events for the test to post.
func manualDelivery(c *envConfig) { c.manual = true }

// noNetworkRetries stops the library resending a request that got no answer,
// so the worker's own retry is what resends it.
func noNetworkRetries(c *envConfig) {
	c.stripe = append(c.stripe, func(s *stripe.Config) { s.NetworkRetries = -1 })
}

func newStripeEnv(t *testing.T, opts ...envOption) *stripeEnv {
	t.Helper()
	r := testredis.New(t)
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := &stripeEnv{ctx: context.Background(), clock: c, store: store, seen: &recorder{}, notices: &notices{}}

	// The purchase store: the Redis ledger itself.
	e.purchases = store

	mux := http.NewServeMux()
	hook := httptest.NewServer(mux)
	t.Cleanup(hook.Close)
	e.webhook = hook.URL + WebhookPath
	var ec envConfig
	for _, f := range opts {
		f(&ec)
	}
	so := stripestub.Options{WebhookURL: e.webhook}
	e.manual = ec.manual
	if ec.manual {
		so.WebhookURL = ""
	}
	e.stub = stripestub.New(t, so)
	cfg := stripe.Config{SecretKey: e.stub.SecretKey, WebhookSecret: e.stub.WebhookSecret, APIBase: e.stub.URL,
		// A connection per request: otherwise net/http itself resends a request
		// with an Idempotency-Key when a reused connection dies without an answer.
		HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	for _, f := range ec.stripe {
		f(&cfg)
	}
	if e.provider, err = stripe.New(cfg); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	log := zap.New(core)
	e.worker, err = recharge.New(recharge.Options{
		Store:    store,
		Charger:  &recharge.ProviderCharger{Provider: e.provider, Profiles: e.purchases, Now: c.Now},
		Notifier: e.notices,
		Settings: func() recharge.Settings {
			return recharge.Settings{CreditTTL: testPolicy.CreditTTL, LowBalance: usd("1.00"), ExpiringWithin: time.Hour}
		},
		Logger: log, Now: c.Now, Observer: e.seen, RechargeBackoff: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = &Service{Store: e.purchases, Provider: e.provider, Recharges: e.worker, Policy: func() billing.Policy { return testPolicy },
		PublicURL: "http://localhost:8080", Logger: log, Observer: e.seen}
	mux.Handle("POST "+WebhookPath, e.svc.Webhook())
	// No log line of any test carries a secret or card data.
	t.Cleanup(func() {
		for _, l := range e.logs.All() {
			line := fmt.Sprintf("%s %v", l.Message, l.ContextMap())
			for _, secret := range []string{e.stub.SecretKey, e.stub.WebhookSecret, "_secret_", "4242424242424242", "exp_"} {
				if strings.Contains(line, secret) {
					t.Errorf("a log line carries %q: %s", secret, line)
				}
			}
			// Nor what a receipt shows of a card: its last four digits or brand as fields.
			for _, field := range []string{"last4", "brand", "card"} {
				if _, ok := l.ContextMap()[field]; ok {
					t.Errorf("a log line carries a %q field: %s", field, line)
				}
			}
		}
	})
	return e
}

// account creates id in tier-1.
func (e *stripeEnv) account(t *testing.T, id string) {
	t.Helper()
	if _, err := e.store.CreateAccount(e.ctx, id, "tier-1"); err != nil {
		t.Fatal(err)
	}
}

// buy starts a purchase through the service.
func (e *stripeEnv) buy(t *testing.T, account, id, amount string, saveCard bool) billing.Purchase {
	t.Helper()
	st, err := e.svc.Start(e.ctx, StartRequest{Account: account, ID: id, Amount: usd(amount), SaveCard: saveCard, Actor: "test"})
	if err != nil {
		t.Fatalf("Start(%s %s): %v", account, amount, err)
	}
	if st.Purchase.Status != billing.PurchasePending || !strings.HasPrefix(st.Purchase.CheckoutURL, e.stub.URL) {
		t.Fatalf("started purchase %+v: want pending with the stand-in's checkout URL", st.Purchase)
	}
	return st.Purchase
}

// pay plays the customer paying p's checkout; the stand-in has delivered the
// events to the webhook when it returns.
func (e *stripeEnv) pay(t *testing.T, p billing.Purchase, pay stripestub.Pay) []stripestub.Event {
	t.Helper()
	events, err := e.stub.CompleteCheckout(p.CheckoutID, pay)
	if err != nil {
		t.Fatal(err)
	}
	if e.manual {
		for _, ev := range events {
			if st := e.deliver(t, ev); st != http.StatusOK {
				t.Fatalf("%s: HTTP %d", ev.Type, st)
			}
		}
	}
	e.allDelivered(t)
	return events
}

// allDelivered fails unless every delivery so far got a 2xx.
func (e *stripeEnv) allDelivered(t *testing.T) {
	t.Helper()
	e.stub.Flush()
	for _, d := range e.stub.Deliveries() {
		if d.Status/100 != 2 {
			t.Fatalf("delivery %s", d)
		}
	}
}

// post sends a webhook request as Stripe does and returns the status.
func (e *stripeEnv) post(t *testing.T, payload []byte, signature string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.webhook, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if signature != "" {
		req.Header.Set("Stripe-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// deliver posts a stand-in event to the webhook (a redelivery, or a crafted one)
// and returns the status.
func (e *stripeEnv) deliver(t *testing.T, ev stripestub.Event) int {
	t.Helper()
	return e.post(t, ev.Payload, ev.Signature)
}

// spend charges cost to account as a settled request.
func (e *stripeEnv) spend(t *testing.T, account, hold string, cost money.Micros) billing.Settlement {
	t.Helper()
	if _, err := e.store.Reserve(e.ctx, billing.ReserveRequest{Account: account, HoldID: hold, Estimate: cost, Grace: testPolicy.Grace, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	s, err := e.store.Settle(e.ctx, billing.SettleRequest{Account: account, HoldID: hold, Cost: cost, Triggers: e.worker.Triggers()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *stripeEnv) get(t *testing.T, account string) billing.Account {
	t.Helper()
	a, err := e.store.GetAccount(e.ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *stripeEnv) purchase(t *testing.T, account, id string) billing.Purchase {
	t.Helper()
	p, err := e.purchases.GetPurchase(e.ctx, account, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// grants counts the account's grants of source and their amounts.
func grants(a billing.Account, source string) (n int, total money.Micros) {
	for _, g := range a.Grants {
		if g.Source == source {
			n++
			total += g.Amount
		}
	}
	return n, total
}

func (e *stripeEnv) audit(t *testing.T, account string) {
	t.Helper()
	r, err := billing.AuditAccount(e.ctx, e.store, account)
	if err != nil || !r.OK() {
		t.Fatalf("audit of %s: %+v %v", account, r.Problems, err)
	}
}

// event returns the first of events of type typ.
func event(t *testing.T, events []stripestub.Event, typ string) stripestub.Event {
	t.Helper()
	for _, ev := range events {
		if ev.Type == typ {
			return ev
		}
	}
	t.Fatalf("no %s among %d events", typ, len(events))
	return stripestub.Event{}
}
