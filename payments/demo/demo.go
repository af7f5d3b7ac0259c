// Package demo is the payments.Provider of the quickstart: the whole purchase flow
// with nobody charged. StartCheckout returns the URL of a local checkout page,
// served by the Provider itself (an http.Handler the portal mounts, e.g. at
// /billing/checkout/demo/), that shows the amount, says plainly that this is a
// demo and nobody is charged, and has a Pay button. Pressing it calls
// Config.OnPaid with the same CheckoutPaid event Stripe's webhook would give, then
// sends the customer to the success URL. The URL carries a token, an HMAC of the
// purchase id under a per-process secret, that is needed to see the page and to
// post its form (so it is the form's CSRF token too): nobody can complete someone
// else's purchase. The page runs no script and has a strict Content-Security-
// Policy. Saved "cards" are a demo card •••• 4242, and off-session charges succeed
// unless Config.Charge says otherwise (a test hook). Checkouts and saved cards
// live in memory and end with the process, as the quickstart's memory:// ledger
// does.
package demo

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/creditgate/creditgate/payments"
)

// DefaultTTL is how long a demo checkout can be paid.
const DefaultTTL = time.Hour

// CardID is the demo card's payment-method id.
const CardID = "pm_demo_4242"

// Config configures a Provider.
type Config struct {
	// BaseURL is the absolute URL the Provider is mounted at, with a trailing
	// slash: "http://localhost:8080/billing/checkout/demo/". Checkout URLs are
	// BaseURL + the purchase id + "?token=…".
	BaseURL string
	// OnPaid records a paid purchase (credits it). It is called when the customer
	// presses Pay, before the redirect to the success URL; an error shows the
	// customer a failure and leaves the purchase unpaid, to try again. The
	// Provider calls it once per purchase in a process, but the caller must still
	// be idempotent by PurchaseID (or Event.ID, which is stable per purchase): a
	// restart, a second instance, or an error returned after the credit was
	// recorded can all call it again for one purchase.
	OnPaid func(ctx context.Context, ev payments.Event) error
	// Secret keys the checkout tokens (default 32 random bytes: links end with
	// the process, as the checkouts do).
	Secret []byte
	// Currency is payments.currency, for display (default usd).
	Currency string
	// TTL is how long a checkout can be paid (default DefaultTTL).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Charge decides each off-session charge, once per charge id (a test hook;
	// default: every charge succeeds).
	Charge func(payments.Charge) payments.ChargeResult
}

// Provider is the demo payments.Provider and its checkout page (ServeHTTP).
type Provider struct {
	base     *url.URL
	onPaid   func(ctx context.Context, ev payments.Event) error
	secret   []byte
	currency payments.Currency
	ttl      time.Duration
	now      func() time.Time
	charge   func(payments.Charge) payments.ChargeResult

	mu        sync.Mutex
	checkouts map[string]*checkout    // by purchase id
	charges   map[string]chargeRecord // by charge id
	cards     map[string]bool         // customers with the demo card saved
}

var _ payments.Provider = (*Provider)(nil)

// checkout is one started purchase. mu serializes its payment, so two posts of
// one form cannot both call OnPaid.
type checkout struct {
	mu      sync.Mutex
	req     payments.Checkout
	session payments.CheckoutSession
	paid    bool
}

type chargeRecord struct {
	req payments.Charge
	res payments.ChargeResult
}

// New checks cfg and returns a Provider.
func New(cfg Config) (*Provider, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || !strings.HasSuffix(base.Path, "/") {
		return nil, fmt.Errorf("%w: demo checkout base URL %q: want an absolute http(s) URL ending in /", payments.ErrInvalid, cfg.BaseURL)
	}
	if cfg.OnPaid == nil {
		return nil, fmt.Errorf("%w: demo provider without an OnPaid callback", payments.ErrInvalid)
	}
	currency, err := payments.ParseCurrency(cfg.Currency)
	if err != nil {
		return nil, err
	}
	p := &Provider{base: base, onPaid: cfg.OnPaid, secret: cfg.Secret, currency: currency, ttl: cfg.TTL, now: cfg.Now, charge: cfg.Charge,
		checkouts: map[string]*checkout{}, charges: map[string]chargeRecord{}, cards: map[string]bool{}}
	if len(p.secret) == 0 {
		p.secret = make([]byte, 32)
		if _, err := rand.Read(p.secret); err != nil {
			return nil, err
		}
	}
	if p.ttl <= 0 {
		p.ttl = DefaultTTL
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.charge == nil {
		p.charge = func(c payments.Charge) payments.ChargeResult {
			return payments.ChargeResult{Status: payments.ChargeSucceeded, PaymentRef: "pi_demo_" + c.ID}
		}
	}
	return p, nil
}

// Name is "demo".
func (p *Provider) Name() string { return "demo" }

// token is the purchase's unguessable capability: base64url(HMAC-SHA256).
func (p *Provider) token(purchase string) string {
	mac := hmac.New(sha256.New, p.secret)
	mac.Write([]byte("creditgate demo checkout\x00" + purchase))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// validToken compares in constant time.
func (p *Provider) validToken(purchase, token string) bool {
	return hmac.Equal([]byte(token), []byte(p.token(purchase)))
}

// customerID is the account's demo customer.
func customerID(account string) string { return "cus_demo_" + account }

// StartCheckout records the purchase and returns its page's URL. Starting the same
// purchase again returns the same session; other details under the same purchase
// id are refused (ErrRejected), as Stripe refuses a reused idempotency key.
func (p *Provider) StartCheckout(_ context.Context, c payments.Checkout) (payments.CheckoutSession, error) {
	if err := c.Validate(); err != nil {
		return payments.CheckoutSession{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if co, found := p.checkouts[c.PurchaseID]; found {
		if co.req != c {
			return payments.CheckoutSession{}, fmt.Errorf("%w: purchase %s was started with other details", payments.ErrRejected, c.PurchaseID)
		}
		return co.session, nil
	}
	customer := c.CustomerID
	if customer == "" {
		customer = customerID(c.Account)
	}
	u := *p.base
	u.Path += c.PurchaseID // ValidID: no character needs escaping
	u.RawQuery = url.Values{"token": {p.token(c.PurchaseID)}}.Encode()
	session := payments.CheckoutSession{ID: "cs_demo_" + randomHex(12), URL: u.String(), ExpiresAt: p.now().Add(p.ttl), CustomerID: customer}
	p.checkouts[c.PurchaseID] = &checkout{req: c, session: session}
	return session, nil
}

// EnsureCustomer returns the account's demo customer, "cus_demo_<account>".
func (p *Provider) EnsureCustomer(_ context.Context, account, _ string) (string, error) {
	if err := payments.ValidAccount(account); err != nil {
		return "", err
	}
	return customerID(account), nil
}

// ChargeSaved "charges" the demo card of the account's demo customer: the
// Config.Charge outcome (default success), decided once per charge id.
func (p *Provider) ChargeSaved(_ context.Context, c payments.Charge) (payments.ChargeResult, error) {
	if err := c.Validate(); err != nil {
		return payments.ChargeResult{}, err
	}
	if c.CustomerID != customerID(c.Account) || c.PaymentMethodID != CardID {
		return payments.ChargeResult{}, fmt.Errorf("%w: no demo card %s for customer %s of account %s", payments.ErrRejected, c.PaymentMethodID, c.CustomerID, c.Account)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if rec, found := p.charges[c.ID]; found {
		if rec.req != c {
			return payments.ChargeResult{}, fmt.Errorf("%w: charge %s was sent with other details", payments.ErrRejected, c.ID)
		}
		return rec.res, nil
	}
	res := p.charge(c)
	p.charges[c.ID] = chargeRecord{req: c, res: res}
	return res, nil
}

// PaymentMethod returns the demo card once a purchase saved it for customerID.
func (p *Provider) PaymentMethod(_ context.Context, customerID string) (*payments.Card, error) {
	if customerID == "" {
		return nil, fmt.Errorf("%w: no customer id", payments.ErrInvalid)
	}
	p.mu.Lock()
	saved := p.cards[customerID]
	p.mu.Unlock()
	if !saved {
		return nil, nil
	}
	return &payments.Card{ID: CardID, Brand: "demo", Last4: "4242", ExpMonth: 12, ExpYear: p.now().Year() + 3}, nil
}

// ReceiptURL is "": nobody paid, there is no receipt.
func (p *Provider) ReceiptURL(context.Context, string) (string, error) { return "", nil }

// ParseWebhook refuses everything: the demo's payments arrive through OnPaid.
func (p *Provider) ParseWebhook(http.Header, []byte, time.Time) (payments.Event, error) {
	return payments.Event{}, fmt.Errorf("%w: the demo provider receives no webhooks", payments.ErrBadSignature)
}

// paidEvent is the CheckoutPaid event of a purchase: the same shape as Stripe's,
// with a stable event id per purchase.
func (p *Provider) paidEvent(co *checkout) payments.Event {
	ev := payments.Event{
		ID: "evt_demo_" + co.req.PurchaseID, Kind: payments.CheckoutPaid, Type: "demo.checkout.paid", Created: p.now(),
		Account: co.req.Account, PurchaseID: co.req.PurchaseID, CheckoutID: co.session.ID,
		Amount: co.req.Amount, PaymentRef: co.session.ID, CustomerID: co.session.CustomerID,
	}
	if co.req.SaveCard {
		ev.PaymentMethodID = CardID
	}
	return ev
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
