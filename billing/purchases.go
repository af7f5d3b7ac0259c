package billing

import (
	"context"
	"errors"
	"time"

	"github.com/creditgate/creditgate/money"
)

// PurchaseStatus is where a purchase stands.
type PurchaseStatus string

// The purchase statuses. A purchase starts pending and ends in exactly one of paid,
// failed or expired; a paid purchase may later become refunded (some or all of its
// credit taken back because the payment was refunded or disputed).
const (
	PurchasePending  PurchaseStatus = "pending"  // the checkout was started; nothing credited
	PurchasePaid     PurchaseStatus = "paid"     // credited once, as a grant whose id is the purchase id
	PurchaseFailed   PurchaseStatus = "failed"   // the (delayed) payment failed; nothing credited
	PurchaseExpired  PurchaseStatus = "expired"  // the checkout ended unpaid; nothing credited
	PurchaseRefunded PurchaseStatus = "refunded" // paid, then refunded or disputed (see Purchase.TakenBack)
)

// Purchase is one purchase of credit through a payment provider: a checkout the
// customer pays on the provider's page, credited when the provider reports it paid.
type Purchase struct {
	// ID is creditgate's purchase id ("pur_…"): the provider's idempotency key, the
	// metadata every provider event carries back, and the id of the grant it credits.
	ID      string
	Account string
	// Amount is what the customer asked to buy; the grant is for what was paid
	// (PaidAmount), which a provider reports and which is normally the same.
	Amount money.Micros
	Status PurchaseStatus
	// Provider is the payments.provider that took it ("stripe", "demo").
	Provider string
	// SaveCard is the customer's consent to keep the card for auto-recharge.
	SaveCard bool
	// CheckoutID and CheckoutURL are the provider's checkout session and page;
	// CheckoutExpiresAt is when it can no longer be paid.
	CheckoutID        string
	CheckoutURL       string
	CheckoutExpiresAt time.Time
	// PaymentRef is the provider's payment id once paid (Stripe: the PaymentIntent),
	// also on the grant's ledger event as payment_ref.
	PaymentRef string
	PaidAmount money.Micros
	// TakenBack is the credit refunds and disputes took back from this purchase's
	// grant (never more than was left of it).
	TakenBack money.Micros
	// Reason says why a purchase failed, or why credit was taken back.
	Reason    string
	CreatedAt time.Time
	// SettledAt is when it became paid, failed or expired.
	SettledAt time.Time
	// Actor is who started it: "portal" (the Billing page) or an admin token's name.
	Actor string
}

// NewPurchaseRequest starts a purchase.
type NewPurchaseRequest struct {
	Account string
	// ID is the purchase id (NewID("pur_")); a retry with the same id and the same
	// fields returns the same purchase.
	ID       string
	Amount   money.Micros
	Provider string
	SaveCard bool
	Actor    string
}

// PaymentReport is a provider's report that a purchase was paid.
type PaymentReport struct {
	// EventID is the provider event that reported it (for the log; the purchase id
	// makes crediting idempotent whatever the event).
	EventID string
	// Amount is what was paid; it is credited, even past the tier's limits: the
	// customer has paid, and the limits were checked when the purchase started.
	Amount money.Micros
	// PaymentRef is the provider's payment id (optional): kept on the purchase
	// and on the grant's topup event, and indexed so that a refund or a dispute
	// naming only the payment finds the grant (TakeBack).
	PaymentRef string
	// CustomerID and PaymentMethodID, when set, become the account's payment
	// profile (the card kept for auto-recharge, when the customer consented).
	CustomerID      string
	PaymentMethodID string
}

// TakeBackRequest takes back the credit of a refunded or disputed payment.
type TakeBackRequest struct {
	// PaymentRef names the payment (the purchase's or recharge's PaymentRef).
	PaymentRef string
	// Upto is the cumulative amount the provider has refunded or disputed for this
	// payment so far. What is taken back in all is min(Upto, what was credited) and
	// never more than is left of the payment's grant; a report whose Upto is not above
	// the highest seen changes nothing, so replays and out-of-order events are harmless.
	Upto money.Micros
	// Reason is kept on the adjustment event ("refund", "dispute: fraudulent"):
	// required, one line, as an adjustment's reason (billing.ValidAdjustReason).
	Reason string
	// EventID is the provider event, for the log.
	EventID string
}

// TakeBackResult is what a TakeBack did.
type TakeBackResult struct {
	Account string
	// Taken is the credit taken back by this call (0 for a replay); Total is what has
	// been taken back from the payment's grant in all.
	Taken, Total money.Micros
	// Short is what the provider took back by this call that the grant no longer
	// held (it was already spent or expired): said in the event's note, never made
	// into debt.
	Short money.Micros
	// EventID is the adjustment event this call recorded; "" when it recorded
	// none (a replay, or an Upto past what was credited that takes nothing more).
	EventID string
}

// PaymentProfile is an account's customer and saved card at the payment provider:
// provider ids only, never card data.
type PaymentProfile struct {
	Provider        string
	CustomerID      string
	PaymentMethodID string
	// Email is where the provider sends receipts (optional).
	Email string
}

// PurchaseStore keeps purchases and credits them. Every method is atomic per
// account and idempotent by the purchase id or the payment reference, because
// providers and go-redis retry.
type PurchaseStore interface {
	// CreatePurchase records a pending purchase after checking it against the
	// policy as a top-up of that amount would be (min_purchase, the tier's max_topup
	// and max_balance): a LimitError names the rule it breaks.
	CreatePurchase(ctx context.Context, p Policy, r NewPurchaseRequest) (Purchase, error)
	// AttachCheckout stores the provider's checkout session of a pending purchase.
	AttachCheckout(ctx context.Context, account, purchaseID, checkoutID, url string, expiresAt time.Time) (Purchase, error)
	// CompletePurchase credits a paid purchase once, as a grant whose id is the
	// purchase id (source purchase, payment_ref on its event), paying debt first.
	// A second call answers the first result with Replayed set.
	CompletePurchase(ctx context.Context, p Policy, account, purchaseID string, r PaymentReport) (TopUpResult, error)
	// EndPurchase marks a pending purchase failed or expired; a paid one is left as
	// it is (events arrive out of order).
	EndPurchase(ctx context.Context, account, purchaseID string, status PurchaseStatus, reason string) (Purchase, error)
	// TakeBack takes back the credit of a refunded or disputed payment (see
	// TakeBackRequest); ErrPaymentNotFound for a payment creditgate did not credit.
	TakeBack(ctx context.Context, r TakeBackRequest) (TakeBackResult, error)
	GetPurchase(ctx context.Context, account, purchaseID string) (Purchase, error)
	// ListPurchases returns the account's purchases, newest first.
	ListPurchases(ctx context.Context, account string, limit int) ([]Purchase, error)

	SetPaymentProfile(ctx context.Context, account string, pp PaymentProfile) error
	GetPaymentProfile(ctx context.Context, account string) (PaymentProfile, error)
}

// Errors of purchases.
var (
	ErrPurchaseNotFound = errors.New("purchase not found")
	ErrPaymentNotFound  = errors.New("payment not found")
)
