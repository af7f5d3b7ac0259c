// Package paymentstest provides a fake payments.Provider for other packages'
// tests: a struct with one function field per method, so each test sets just the
// behaviour it needs (no mock framework).
package paymentstest

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/creditgate/creditgate/payments"
)

var _ payments.Provider = (*Provider)(nil)

// ErrNotSet is returned by a method whose function field the test left nil.
var ErrNotSet = errors.New("fake: method not set by this test")

// Provider implements payments.Provider with one function field per method; a
// method whose field is nil fails with ErrNotSet. Name is "fake" unless NameValue
// is set.
type Provider struct {
	NameValue          string
	StartCheckoutFunc  func(ctx context.Context, c payments.Checkout) (payments.CheckoutSession, error)
	EnsureCustomerFunc func(ctx context.Context, account, email string) (string, error)
	ChargeSavedFunc    func(ctx context.Context, c payments.Charge) (payments.ChargeResult, error)
	PaymentMethodFunc  func(ctx context.Context, customerID string) (*payments.Card, error)
	ReceiptURLFunc     func(ctx context.Context, paymentRef string) (string, error)
	ParseWebhookFunc   func(header http.Header, body []byte, now time.Time) (payments.Event, error)
}

func (f *Provider) Name() string {
	if f.NameValue == "" {
		return "fake"
	}
	return f.NameValue
}

func (f *Provider) StartCheckout(ctx context.Context, c payments.Checkout) (payments.CheckoutSession, error) {
	if f.StartCheckoutFunc == nil {
		return payments.CheckoutSession{}, ErrNotSet
	}
	return f.StartCheckoutFunc(ctx, c)
}

func (f *Provider) EnsureCustomer(ctx context.Context, account, email string) (string, error) {
	if f.EnsureCustomerFunc == nil {
		return "", ErrNotSet
	}
	return f.EnsureCustomerFunc(ctx, account, email)
}

func (f *Provider) ChargeSaved(ctx context.Context, c payments.Charge) (payments.ChargeResult, error) {
	if f.ChargeSavedFunc == nil {
		return payments.ChargeResult{}, ErrNotSet
	}
	return f.ChargeSavedFunc(ctx, c)
}

func (f *Provider) PaymentMethod(ctx context.Context, customerID string) (*payments.Card, error) {
	if f.PaymentMethodFunc == nil {
		return nil, ErrNotSet
	}
	return f.PaymentMethodFunc(ctx, customerID)
}

func (f *Provider) ReceiptURL(ctx context.Context, paymentRef string) (string, error) {
	if f.ReceiptURLFunc == nil {
		return "", ErrNotSet
	}
	return f.ReceiptURLFunc(ctx, paymentRef)
}

func (f *Provider) ParseWebhook(header http.Header, body []byte, now time.Time) (payments.Event, error) {
	if f.ParseWebhookFunc == nil {
		return payments.Event{}, ErrNotSet
	}
	return f.ParseWebhookFunc(header, body, now)
}
