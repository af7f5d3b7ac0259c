// Package purchase is the flow of money coming in through a payment provider,
// between payments.Provider (Stripe, the demo) and billing.PurchaseStore (the
// ledger). Service.Start begins a purchase: a purchase id, the ledger's limits
// checked (min_purchase, the tier's max_topup and max_balance, as for a top-up),
// the account's provider customer found or created, and the provider's checkout
// page started and attached. Service.HandleEvent acts on what the provider
// reports (a checkout paid, failed or expired; a card saved; a refund or a
// dispute; an auto-recharge paid or failed), and Service.Webhook is the
// `POST /webhooks/stripe` endpoint that verifies and decodes those reports.
// Everything is idempotent by the purchase id, the recharge id or the payment
// reference, so retried starts, replayed and duplicated events and events out of
// order credit each payment exactly once. Every event is logged on one line
// (account, ids, kind, amount, outcome; never a secret or card data) and
// counted through an Observer.
package purchase

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

// ErrPaymentsOff is Start's error when no payment provider is configured
// (payments.provider: none).
var ErrPaymentsOff = errors.New("payments are off: set payments.provider (stripe or demo) to sell credit")

// ErrProvider wraps a payment provider's refusal of a request (payments.ErrRejected):
// sending the same request again cannot succeed. Other provider errors (no
// answer) are returned as they are: the outcome is unknown, retry with the same
// purchase id.
var ErrProvider = errors.New("the payment provider refused the request")

// storeTimeout bounds each store and provider call of an event, so a hung store
// answers the webhook 5xx (the provider retries) instead of hanging it.
const storeTimeout = 10 * time.Second

// Recharges settles the auto-recharges a provider reports by webhook: the
// recharge worker (billing/recharge.Worker) implements it.
type Recharges interface {
	// RechargePaid credits recharge id once (a replay has Replayed set);
	// billing.ErrRechargeNotPending for a recharge the store does not know.
	RechargePaid(ctx context.Context, account, id, paymentRef string) (billing.TopUpResult, error)
	// RechargeFailed records its failure; billing.ErrRechargeNotPending when it
	// is no longer pending (already failed, or paid).
	RechargeFailed(ctx context.Context, account, id, reason string) error
}

// Observer is told what the service did, for metrics. Its methods must not block.
type Observer interface {
	// PurchaseStarted: a new purchase's checkout was started (not a retried start).
	PurchaseStarted(provider string, amount money.Micros)
	// PurchaseEnded: a purchase became paid (amount is what was credited),
	// failed or expired; once per purchase, replays excluded.
	PurchaseEnded(provider string, status billing.PurchaseStatus, amount money.Micros)
	// Event: one provider event (a webhook delivery, or the demo page's payment)
	// and what came of it. kind is "" for a delivery that did not parse.
	Event(provider string, kind payments.EventKind, outcome Outcome)
	// TakenBack: a refund or a dispute (kind) took credit back: taken from the
	// payment's grant, and short, what the grant no longer held (already spent).
	TakenBack(provider string, kind payments.EventKind, taken, short money.Micros)
}

// Service runs the purchase flow. Set the fields, then call its methods from any
// number of goroutines; the fields must not change afterwards.
type Service struct {
	// Store keeps purchases and credits them (billing/redisstore). Required.
	Store billing.PurchaseStore
	// Provider takes the payments (payments.provider). nil: payments are off;
	// Start fails with ErrPaymentsOff and there are no events.
	Provider payments.Provider
	// Recharges settles auto-recharges reported by the provider's webhook (the
	// recharge worker). nil: such events fail (answered 5xx, so the provider
	// retries them once a worker is there).
	Recharges Recharges
	// Policy returns the current policy (hot-reloaded). Required.
	Policy func() billing.Policy
	// PublicURL is portal.public_url, e.g. "https://credit.example.com": the
	// checkout's default return addresses are its Billing page,
	// PublicURL/billing/?purchase=ID after paying and PublicURL/billing/ after
	// cancelling.
	PublicURL string
	// Logger gets one line per purchase started and per event; nil discards.
	Logger *zap.Logger
	// Observer is told every outcome (nil: nobody).
	Observer Observer
	// Now is the clock webhook signatures are checked against (default time.Now).
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Service) log() *zap.Logger {
	if s.Logger == nil {
		return zap.NewNop()
	}
	return s.Logger
}

func (s *Service) policy() billing.Policy {
	if s.Policy == nil {
		return billing.Policy{}
	}
	return s.Policy()
}

func (s *Service) providerName() string {
	if s.Provider == nil {
		return "none"
	}
	return s.Provider.Name()
}

// StartRequest is a purchase to start.
type StartRequest struct {
	Account string
	// ID is the purchase id: "" makes a new one. Starting again with the same ID
	// and the same fields (a double click, a retry after a lost answer) returns
	// the same purchase and checkout; the same ID with other fields is
	// billing.ErrIdempotencyConflict. IDForKey derives one from an
	// Idempotency-Key.
	ID string
	// Amount is the credit to buy: positive, a whole number of cents.
	Amount money.Micros
	// SaveCard is the customer's consent to keep the card for auto-recharge.
	SaveCard bool
	// SuccessURL and CancelURL are where the checkout page sends the customer
	// afterwards; "" is the Billing page (see Service.PublicURL). A
	// "{CHECKOUT_SESSION_ID}" in SuccessURL is replaced by the provider.
	SuccessURL, CancelURL string
	// Actor is who starts it: "portal" (the Billing page) or an admin token's name.
	Actor string
}

// Started is a started purchase.
type Started struct {
	// Purchase is pending, with its CheckoutURL to send the customer to, or, for
	// a retried start of a purchase that has ended since, as it ended.
	Purchase billing.Purchase
	// Replayed is true when the purchase id had been started before.
	Replayed bool
}

// IDForKey is the purchase id of an Idempotency-Key sent for account: the same
// key names the same purchase. Account ids cannot contain a newline, so the
// encoding is unambiguous.
func IDForKey(account, key string) string {
	sum := sha256.Sum256([]byte(account + "\n" + key))
	return "pur_" + hex.EncodeToString(sum[:12])
}

// Start begins a purchase (see the package comment). A limit it breaks is the
// ledger's *billing.LimitError, whose message callers show; a malformed request
// is billing.ErrInvalid; a provider's refusal wraps ErrProvider; an error of
// neither kind (the store or the provider did not answer) leaves the purchase
// pending, to be started again with the same ID.
func (s *Service) Start(ctx context.Context, r StartRequest) (Started, error) {
	if s.Provider == nil {
		return Started{}, ErrPaymentsOff
	}
	if err := billing.ValidAccountID(r.Account); err != nil {
		return Started{}, err
	}
	if r.ID == "" {
		r.ID = billing.NewID("pur_")
	}
	base := strings.TrimRight(s.PublicURL, "/")
	if r.SuccessURL == "" {
		r.SuccessURL = base + "/billing/?purchase=" + url.QueryEscape(r.ID)
	}
	if r.CancelURL == "" {
		r.CancelURL = base + "/billing/"
	}
	checkout := payments.Checkout{PurchaseID: r.ID, Account: r.Account, Amount: r.Amount, SaveCard: r.SaveCard,
		SuccessURL: r.SuccessURL, CancelURL: r.CancelURL}
	if err := checkout.Validate(); err != nil {
		return Started{}, invalid(err)
	}
	provider := s.Provider.Name()
	log := s.log().With(zap.String("account", r.Account), zap.String("purchase_id", r.ID), zap.String("provider", provider))

	_, err := s.Store.GetPurchase(ctx, r.Account, r.ID)
	replayed := err == nil
	if err != nil && !errors.Is(err, billing.ErrPurchaseNotFound) {
		return Started{}, err
	}
	p, err := s.Store.CreatePurchase(ctx, s.policy(), billing.NewPurchaseRequest{
		Account: r.Account, ID: r.ID, Amount: r.Amount, Provider: provider, SaveCard: r.SaveCard, Actor: r.Actor,
	})
	if err != nil {
		return Started{}, err
	}
	if p.Status != billing.PurchasePending || p.CheckoutURL != "" {
		return Started{Purchase: p, Replayed: replayed}, nil
	}

	profile, err := s.customer(ctx, r.Account)
	if err != nil {
		return Started{}, s.startFailed(ctx, log, p, err)
	}
	checkout.CustomerID, checkout.Email = profile.CustomerID, profile.Email
	session, err := s.Provider.StartCheckout(ctx, checkout)
	if err != nil {
		return Started{}, s.startFailed(ctx, log, p, err)
	}
	p, err = s.Store.AttachCheckout(ctx, r.Account, r.ID, session.ID, session.URL, session.ExpiresAt)
	if err != nil {
		return Started{}, err
	}
	if !replayed && s.Observer != nil {
		s.Observer.PurchaseStarted(provider, p.Amount)
	}
	log.Info("purchase started", zap.Stringer("amount", p.Amount), zap.Bool("save_card", p.SaveCard),
		zap.String("checkout_id", session.ID), zap.Time("checkout_expires_at", session.ExpiresAt), zap.String("actor", r.Actor),
		zap.Bool("replayed", replayed))
	return Started{Purchase: p, Replayed: replayed}, nil
}

// customer returns the account's payment profile with its provider customer,
// finding or creating the customer on the account's first purchase (or its first
// with this provider).
func (s *Service) customer(ctx context.Context, account string) (billing.PaymentProfile, error) {
	profile, err := s.Store.GetPaymentProfile(ctx, account)
	if err != nil {
		return billing.PaymentProfile{}, err
	}
	name := s.Provider.Name()
	if profile.Provider == name && profile.CustomerID != "" {
		return profile, nil
	}
	customer, err := s.Provider.EnsureCustomer(ctx, account, profile.Email)
	if err != nil {
		return billing.PaymentProfile{}, err
	}
	// A card saved with another provider cannot be charged by this one.
	profile = billing.PaymentProfile{Provider: name, CustomerID: customer, Email: profile.Email}
	if err := s.Store.SetPaymentProfile(ctx, account, profile); err != nil {
		return billing.PaymentProfile{}, err
	}
	return profile, nil
}

// startFailed handles a provider error while starting p: a refusal ends the
// purchase as failed (the same request would be refused again), anything else
// leaves it pending for a retry with the same id.
func (s *Service) startFailed(ctx context.Context, log *zap.Logger, p billing.Purchase, err error) error {
	if !errors.Is(err, payments.ErrRejected) && !errors.Is(err, payments.ErrInvalid) {
		log.Warn("purchase: the checkout could not be started; the purchase stays pending for a retry with the same id", zap.Error(err))
		return err
	}
	reason := "the payment provider refused the checkout: " + err.Error()
	if _, endErr := s.Store.EndPurchase(ctx, p.Account, p.ID, billing.PurchaseFailed, reason); endErr != nil {
		log.Warn("purchase: recording a refused checkout failed", zap.Error(endErr))
	}
	log.Warn("purchase: the payment provider refused the checkout", zap.Error(err))
	if errors.Is(err, payments.ErrInvalid) {
		return invalid(err)
	}
	return fmt.Errorf("%w: %w", ErrProvider, err)
}

// invalid turns a payments.ErrInvalid into billing.ErrInvalid, as callers map it.
func invalid(err error) error {
	msg := strings.TrimPrefix(err.Error(), payments.ErrInvalid.Error()+": ")
	return fmt.Errorf("%w: %s", billing.ErrInvalid, msg)
}

// List returns account's purchases, newest first, at most limit.
func (s *Service) List(ctx context.Context, account string, limit int) ([]billing.Purchase, error) {
	return s.Store.ListPurchases(ctx, account, limit)
}
