package payments

import (
	"time"

	"github.com/creditgate/creditgate/money"
)

// EventKind is what happened, as creditgate acts on it.
type EventKind string

// The event kinds. The caller acts on each idempotently (by Event.ID and by the
// purchase or recharge id), because providers deliver events at least once and in
// any order: a CheckoutPending or CheckoutExpired after a CheckoutPaid changes
// nothing, and a purchase is credited once however many CheckoutPaid arrive.
const (
	// CheckoutPaid: the purchase is paid; credit Amount once per PurchaseID.
	// Stripe: checkout.session.completed with payment_status "paid", or
	// checkout.session.async_payment_succeeded.
	CheckoutPaid EventKind = "checkout_paid"
	// CheckoutPending: the checkout is complete but the payment settles later
	// (bank debits); CheckoutPaid or CheckoutFailed follows. Credit nothing yet.
	CheckoutPending EventKind = "checkout_pending"
	// CheckoutFailed: the delayed payment of a pending checkout failed.
	CheckoutFailed EventKind = "checkout_failed"
	// CheckoutExpired: the session ended unpaid; the purchase can no longer be paid.
	CheckoutExpired EventKind = "checkout_expired"
	// CardSaved: a purchase's payment saved the card (the customer consented);
	// CustomerID and PaymentMethodID are the account's card for auto-recharge.
	// Stripe: payment_intent.succeeded of a checkout with setup_future_usage. It
	// may come before or after the purchase's CheckoutPaid. (The demo provider
	// sends none: its CheckoutPaid carries PaymentMethodID.)
	CardSaved EventKind = "card_saved"
	// RechargeSucceeded: an off-session charge (RechargeID) succeeded; credit it
	// once. It repeats a synchronous ChargeSucceeded, or settles a ChargeProcessing.
	RechargeSucceeded EventKind = "recharge_succeeded"
	// RechargeFailed: an off-session charge (RechargeID) failed; Reason says why.
	RechargeFailed EventKind = "recharge_failed"
	// Refunded: money of a payment (PaymentRef) was given back; Amount is the
	// cumulative amount refunded so far (not this refund's), Total the payment's.
	// Take back what is left of that payment's grant up to Amount: events may
	// arrive out of order, so one whose Amount is not above the highest seen for
	// the payment changes nothing. Account and PurchaseID or RechargeID are set
	// when the charge carries creditgate's metadata; match on PaymentRef, and
	// ignore a PaymentRef creditgate does not know (another integration's).
	Refunded EventKind = "refunded"
	// Disputed: the cardholder disputed a payment (PaymentRef) for Amount; Reason is
	// the network's reason ("fraudulent", …). A dispute carries no metadata:
	// match on PaymentRef.
	Disputed EventKind = "disputed"
	// Ignored: an event creditgate does not act on (another integration's, or a
	// type it does not use). Answer 2xx.
	Ignored EventKind = "ignored"
)

// Event is a normalized provider event. Which fields are set depends on Kind (see
// the kinds); ID, Kind, Type and Created are always set.
type Event struct {
	// ID is the provider's event id (Stripe: evt_…), the same on every redelivery
	// of one event: deduplicate on it.
	ID   string
	Kind EventKind
	// Type is the provider's own event type ("checkout.session.completed"), for logs.
	Type    string
	Created time.Time
	// Livemode is false for Stripe test-mode events.
	Livemode bool

	Account    string // creditgate account (metadata creditgate_account, client_reference_id)
	PurchaseID string // checkout events, CardSaved; Refunded when the payment was a purchase
	RechargeID string // recharge events; Refunded when the payment was a recharge
	CheckoutID string // the provider's checkout session id (checkout events)

	// Amount is, by kind: CheckoutPaid the amount paid; RechargeSucceeded and
	// RechargeFailed the charge's amount; Refunded the cumulative amount refunded;
	// Disputed the disputed amount.
	Amount money.Micros
	// Total is the payment's full amount (Refunded), so Amount == Total is a full refund.
	Total money.Micros

	// PaymentRef is the provider's payment id (Stripe: the PaymentIntent, else the
	// checkout session), kept on the grant's ledger event as payment_ref.
	PaymentRef string
	ChargeID   string // the provider's charge (Refunded, Disputed)

	CustomerID string
	// PaymentMethodID is the saved card: CardSaved, and CheckoutPaid when the
	// provider knows it there (the demo always; Stripe only when the event
	// carries an expanded PaymentIntent). Keep it from either.
	PaymentMethodID string

	DeclineCode string // RechargeFailed
	Reason      string // RechargeFailed (human), Disputed (the dispute reason)
}
