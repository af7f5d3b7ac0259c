package portal

import (
	"context"
	"errors"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/payments"
)

// CardsOnFile finds an account's card through its payment profile (the
// provider's customer id, kept by the purchase store) and the provider, which
// alone knows the card.
type CardsOnFile struct {
	Profiles interface {
		GetPaymentProfile(ctx context.Context, account string) (billing.PaymentProfile, error)
	}
	Provider interface {
		PaymentMethod(ctx context.Context, customerID string) (*payments.Card, error)
	}
}

// PaymentMethod returns the account's saved card, or nil when there is none.
func (c CardsOnFile) PaymentMethod(ctx context.Context, account string) (*payments.Card, error) {
	pp, err := c.Profiles.GetPaymentProfile(ctx, account)
	if errors.Is(err, billing.ErrAccountNotFound) || errors.Is(err, billing.ErrPaymentNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if pp.CustomerID == "" {
		return nil, nil
	}
	return c.Provider.PaymentMethod(ctx, pp.CustomerID)
}
