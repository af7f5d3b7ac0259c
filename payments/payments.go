// Package payments is creditgate's payment-provider layer: how a customer's money
// becomes credit. It defines the Provider interface that the Billing page, the admin
// purchase endpoints and the auto-recharge charger call, and the normalized types
// they exchange with it (a Checkout to start, a Charge of a saved card, the Card on
// file, and the Event a provider's webhook or checkout page reports), so the callers
// never see a provider's own objects. Implementations: payments/stripe (Stripe
// Checkout and off-session PaymentIntents through the official library) and
// payments/demo (a local checkout page for the quickstart that charges nobody).
// Amounts are money.Micros; a provider converts them to its currency's minor units
// (see Currency) and refuses what does not convert exactly. Nothing card-related is
// ever returned but the provider's ids and what a person reads on a receipt (brand,
// last four digits, expiry).
package payments

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Provider takes payments. Every method that moves money is idempotent by an id
// the caller chooses (the purchase id, the recharge id): calling it again after an
// error or a lost answer, with the same id and the same arguments, returns the same
// result and never charges twice.
type Provider interface {
	// Name is the provider's config name ("stripe", "demo"), for logs and metrics.
	Name() string

	// StartCheckout begins a purchase: it returns the URL of a checkout page to send
	// the customer to. The purchase is paid when an Event of kind CheckoutPaid for
	// c.PurchaseID arrives (from ParseWebhook or the demo page's callback), never
	// when StartCheckout returns. When c.CustomerID is empty the provider finds or
	// creates the account's customer (EnsureCustomer) and returns its id in the
	// session, for the caller to keep. Calling it again with the same PurchaseID and
	// the same Checkout returns the same session.
	StartCheckout(ctx context.Context, c Checkout) (CheckoutSession, error)

	// EnsureCustomer returns the provider's customer of account, creating it on
	// first use. It is idempotent by account: retries and concurrent calls give one
	// customer. email, when not empty, is set on the customer (for receipts).
	EnsureCustomer(ctx context.Context, account, email string) (customerID string, err error)

	// ChargeSaved charges a saved payment method off-session (auto-recharge),
	// idempotent by c.ID. A decline is a ChargeResult (Status ChargeDeclined or
	// ChargeRequiresAction), not an error. An error means the outcome is unknown
	// (network, timeout, provider 5xx: retry with the same c.ID, which makes it one
	// charge) or, when it wraps ErrRejected, that the provider refused the request
	// itself and retrying the same request cannot succeed.
	ChargeSaved(ctx context.Context, c Charge) (ChargeResult, error)

	// PaymentMethod returns the customer's saved card for display and for
	// ChargeSaved (Card.ID), or nil when none is saved.
	PaymentMethod(ctx context.Context, customerID string) (*Card, error)

	// ReceiptURL returns the provider's receipt page of a payment (an Event's or a
	// ChargeResult's PaymentRef) for the purchase history, or "" when there is none.
	ReceiptURL(ctx context.Context, paymentRef string) (string, error)

	// ParseWebhook verifies a webhook request (its headers and raw body) at time now
	// and decodes it into a normalized Event. A missing, malformed, wrong or stale
	// signature gives an error wrapping ErrBadSignature (answer 400, credit nothing);
	// a correctly signed event creditgate cannot use gives one wrapping
	// ErrInvalidEvent (answer 400 and log it: it needs an operator). Events of no
	// interest are of kind Ignored (answer 2xx).
	ParseWebhook(header http.Header, body []byte, now time.Time) (Event, error)
}

// Checkout is one purchase to start.
type Checkout struct {
	// PurchaseID is creditgate's id of the purchase: the idempotency key of the
	// checkout and the key every event about it carries back.
	PurchaseID string
	// Account is the account the credit is for.
	Account string
	// Amount is the price, which is also the credit granted once paid. It must be
	// positive and a whole number of the currency's minor units (cents).
	Amount money.Micros
	// SaveCard records the customer's consent to keep the card for auto-recharge.
	SaveCard bool
	// CustomerID is the account's provider customer ("" to find or create it).
	CustomerID string
	// Email prefills the checkout page and the receipt (optional).
	Email string
	// SuccessURL and CancelURL are where the checkout page sends the customer
	// afterwards. "{CHECKOUT_SESSION_ID}" in SuccessURL is replaced by the
	// session id, as Stripe does.
	SuccessURL, CancelURL string
}

// CheckoutSession is a started checkout.
type CheckoutSession struct {
	ID         string    // the provider's session id
	URL        string    // where to send the customer
	ExpiresAt  time.Time // after this the session can no longer be paid
	CustomerID string    // the customer it is for (created if the Checkout had none)
}

// Charge is an off-session charge of a saved payment method.
type Charge struct {
	// ID is the recharge id, the provider's idempotency key: the same ID with the
	// same fields is one charge however many times it is sent.
	ID              string
	Account         string
	CustomerID      string
	PaymentMethodID string
	// Amount must be positive and a whole number of minor units (cents).
	Amount money.Micros
}

// ChargeStatus is the outcome of a Charge.
type ChargeStatus string

const (
	// ChargeSucceeded: the money is taken; credit the recharge.
	ChargeSucceeded ChargeStatus = "succeeded"
	// ChargeDeclined: the card was refused (Reason says why); record the failure.
	ChargeDeclined ChargeStatus = "declined"
	// ChargeRequiresAction: the bank wants the customer to authenticate, which an
	// off-session charge cannot do; record the failure and ask the customer to pay
	// on the Billing page.
	ChargeRequiresAction ChargeStatus = "requires_action"
	// ChargeProcessing: the payment method settles later; the outcome arrives as
	// an event (RechargeSucceeded or RechargeFailed).
	ChargeProcessing ChargeStatus = "processing"
)

// ChargeResult is the provider's answer to a Charge.
type ChargeResult struct {
	Status ChargeStatus
	// PaymentRef is the provider's payment id (Stripe: the PaymentIntent), kept on
	// the ledger event and matched by later refund and dispute events.
	PaymentRef string
	// DeclineCode is the provider's machine-readable reason ("insufficient_funds",
	// "authentication_required"); Reason is the human one, for the Billing page and
	// the auto_recharge.failed notice. Both are empty on success.
	DeclineCode string
	Reason      string
}

// Card is a saved card as a person reads it; the provider keeps the card itself.
type Card struct {
	ID       string // the provider's payment-method id, for Charge.PaymentMethodID
	Brand    string // the provider's brand code: "visa", "mastercard", "amex", …
	Last4    string
	ExpMonth int
	ExpYear  int
}

// String is the card as the Billing page shows it: "Visa •••• 4242".
func (c Card) String() string {
	return BrandName(c.Brand) + " •••• " + c.Last4
}

// Expiry is "MM/YYYY".
func (c Card) Expiry() string { return fmt.Sprintf("%02d/%04d", c.ExpMonth, c.ExpYear) }

// brandNames are the display names of Stripe's card brand codes.
var brandNames = map[string]string{
	"amex":             "American Express",
	"cartes_bancaires": "Cartes Bancaires",
	"diners":           "Diners Club",
	"discover":         "Discover",
	"eftpos_au":        "eftpos Australia",
	"interac":          "Interac",
	"jcb":              "JCB",
	"link":             "Link",
	"mastercard":       "Mastercard",
	"unionpay":         "UnionPay",
	"visa":             "Visa",
	"demo":             "Demo card",
}

// BrandName is the display name of a card brand code; an unknown code is shown
// capitalized, and an empty one as "Card".
func BrandName(code string) string {
	if name, ok := brandNames[code]; ok {
		return name
	}
	if code == "" || code == "unknown" {
		return "Card"
	}
	return strings.ToUpper(code[:1]) + strings.ReplaceAll(code[1:], "_", " ")
}
