// Package portal is the customer's Billing page: an http.Handler for /billing/ on
// the data-plane listener. A single-use portal link (minted by the admin API)
// starts a session, a cookie scoped to that one account; every request is
// answered for the session's account only, nothing takes an account id from the
// client. The page shows the balance, grants, this month's usage by day, model
// and key, recent requests, purchases with receipts, the tier, the card on file
// and the auto-recharge settings, and lets the customer buy credit through the
// purchase service (the browser goes to the provider's checkout page) and change
// auto-recharge. It stays live by polling a small JSON endpoint while visible.
// Every state-changing request carries the session's CSRF token, and every
// answer runs under a strict Content-Security-Policy. The page's files are
// embedded (static/), no build step; the reads are package billing/report.
package portal

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/report"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

// Path is where the Billing page is mounted.
const Path = "/billing/"

// DemoCheckoutPath is where the demo provider's checkout page is mounted
// (Handler.DemoCheckout), so demo.Config.BaseURL is PublicURL + this.
const DemoCheckoutPath = "/billing/checkout/demo/"

// DefaultSessionTTL is portal.session_ttl's default.
const DefaultSessionTTL = time.Hour

// Ledger is what the page reads and changes of the session's account: its state
// and ledger (through billing/report), and its auto-recharge settings.
type Ledger interface {
	GetAccount(ctx context.Context, id string) (billing.Account, error)
	report.Ledger
	SetAutoRecharge(ctx context.Context, id string, ar billing.AutoRecharge) error
}

// Keys lists the account's app keys, for the names of the usage-by-key table.
type Keys interface {
	ListKeys(ctx context.Context, account string) ([]billing.APIKey, error)
}

// StartPurchase asks the purchase service for a checkout.
type StartPurchase struct {
	// ID is the purchase id (billing.NewID("pur_")), chosen by the page so the
	// success URL can name it; NewPurchaseRequest.ID.
	ID      string
	Account string
	Amount  money.Micros
	// SaveCard is the customer's consent to keep the card for auto-recharge.
	SaveCard bool
	// SuccessURL and CancelURL bring the browser back to the Billing page;
	// "{CHECKOUT_SESSION_ID}" may stand in SuccessURL, as payments.Checkout allows.
	SuccessURL, CancelURL string
}

// Purchases starts purchases: the purchase service (billing/purchase), which
// checks the amount against min_purchase and the tier (a *billing.LimitError,
// whose message the page shows), records the pending purchase and starts the
// provider's checkout. The returned purchase's CheckoutURL is where the browser
// goes.
type Purchases interface {
	Start(ctx context.Context, r StartPurchase) (billing.Purchase, error)
}

// StartFunc adapts a function to Purchases.
type StartFunc func(ctx context.Context, r StartPurchase) (billing.Purchase, error)

// Start calls f.
func (f StartFunc) Start(ctx context.Context, r StartPurchase) (billing.Purchase, error) {
	return f(ctx, r)
}

// PurchaseHistory reads the account's purchases (billing.PurchaseStore's read side).
type PurchaseHistory interface {
	ListPurchases(ctx context.Context, account string, limit int) ([]billing.Purchase, error)
	GetPurchase(ctx context.Context, account, purchaseID string) (billing.Purchase, error)
}

// PaymentMethods finds the card on file of an account, or nil when none is
// saved. CardsOnFile adapts a PurchaseStore and a payments.Provider to it.
type PaymentMethods interface {
	PaymentMethod(ctx context.Context, account string) (*payments.Card, error)
}

// Receipts finds the provider's receipt page of a payment (payments.Provider
// has this method); "" when there is none.
type Receipts interface {
	ReceiptURL(ctx context.Context, paymentRef string) (string, error)
}

// Handler serves the Billing page and its API under Path. Sessions and Ledger
// are required; each of the others, when nil, leaves its part of the page out
// (no provider configured: no "Add to credit balance").
type Handler struct {
	// Sessions keeps portal links and sessions (hashes only).
	Sessions billing.PortalStore
	// Ledger reads the account and sets its auto-recharge.
	Ledger Ledger
	// Keys names the keys of the usage-by-key table (ids are shown without it).
	Keys Keys
	// Purchases starts purchases; nil when payments.provider is none.
	Purchases Purchases
	// History lists purchases for the history table and the return from checkout.
	History PurchaseHistory
	// Cards shows the payment method on file.
	Cards PaymentMethods
	// Receipts answers the history's receipt links.
	Receipts Receipts
	// Provider is payments.provider ("demo", "stripe"), shown to say plainly
	// that nobody is charged in demo mode.
	Provider string
	// CheckoutOrigin is the provider's checkout page origin
	// ("https://checkout.stripe.com"), allowed as a form-action so a purchase
	// form posted without script may be redirected there. "" for the demo,
	// whose page is on this origin.
	CheckoutOrigin string
	// DemoCheckout is the demo provider's checkout page (a *demo.Provider),
	// served under DemoCheckoutPath; nil unless payments.provider is demo.
	DemoCheckout http.Handler
	// Policy is the current billing policy: min_purchase, tiers,
	// auto_recharge.min_amount.
	Policy func() billing.Policy
	// PublicURL is portal.public_url, the base the browser reaches creditgate
	// at ("https://api.example.com"); the checkout's success and cancel URLs are
	// built on it, and an https one marks the cookie Secure behind a TLS proxy.
	PublicURL *url.URL
	// SessionTTL is portal.session_ttl (DefaultSessionTTL when 0).
	SessionTTL time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger logs failures (never tokens, cookies or card data); nil: none.
	Logger *zap.Logger

	once sync.Once
	mux  *http.ServeMux
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) sessionTTL() time.Duration {
	if h.SessionTTL > 0 {
		return h.SessionTTL
	}
	return DefaultSessionTTL
}

func (h *Handler) policy() billing.Policy {
	if h.Policy != nil {
		return h.Policy()
	}
	return billing.Policy{}
}

func (h *Handler) log() *zap.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return zap.NewNop()
}

// ServeHTTP answers every request under Path with the security headers, then
// routes it. Build the Handler's fields before the first request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() { h.mux = h.newMux() })
	h.mux.ServeHTTP(w, r)
}
