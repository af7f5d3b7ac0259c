package stripe

import (
	"context"
	"errors"
	"fmt"

	stripego "github.com/stripe/stripe-go/v85"

	"github.com/creditgate/creditgate/payments"
)

// customerKey is the Idempotency-Key of an account's customer creation: retries
// and concurrent first purchases within Stripe's 24-hour key lifetime get one
// customer. Later, search by metadata finds it (search lags writes by up to a
// minute, which the key covers).
func customerKey(account string) string { return "creditgate-customer-" + account }

// EnsureCustomer returns the account's Stripe customer (metadata
// creditgate_account), creating it on first use, and sets email on it when given
// and different.
func (p *Provider) EnsureCustomer(ctx context.Context, account, email string) (string, error) {
	if err := payments.ValidAccount(account); err != nil {
		return "", err
	}
	cus, err := p.findCustomer(ctx, account)
	if err != nil {
		return "", err
	}
	if cus == nil {
		if cus, err = p.createCustomer(ctx, account); err != nil {
			return "", err
		}
	}
	if email != "" && cus.Email != email {
		// Set apart from the creation, so that concurrent first purchases send
		// identical creation requests (one key, one answer) whatever their emails.
		params := &stripego.CustomerUpdateParams{Email: stripego.String(email)}
		if _, err := p.client.V1Customers.Update(ctx, cus.ID, params); err != nil {
			return "", apiError("update customer email", err)
		}
	}
	return cus.ID, nil
}

// findCustomer searches the account's customer: the oldest if there are several
// (an account's customers made before creditgate, or by hand), nil if none. A
// search refused outright (Stripe offers no search in some regions) counts as
// none found: creation's idempotency key still protects retries.
func (p *Provider) findCustomer(ctx context.Context, account string) (*stripego.Customer, error) {
	params := &stripego.CustomerSearchParams{SearchParams: stripego.SearchParams{
		// ValidAccount allows no quote or backslash, so the value needs no escaping.
		Query: fmt.Sprintf("metadata['%s']:'%s'", payments.MetaAccount, account),
		Limit: stripego.Int64(10),
	}}
	list := p.client.V1Customers.Search(ctx, params)
	if err := list.Err(); err != nil {
		err = apiError("search customer", err)
		if errors.Is(err, payments.ErrRejected) {
			return nil, nil
		}
		return nil, err
	}
	var oldest *stripego.Customer
	for _, c := range list.Data() {
		if c.Deleted || c.Metadata[payments.MetaAccount] != account {
			continue
		}
		if oldest == nil || c.Created < oldest.Created {
			oldest = c
		}
	}
	return oldest, nil
}

func (p *Provider) createCustomer(ctx context.Context, account string) (*stripego.Customer, error) {
	params := &stripego.CustomerCreateParams{Description: stripego.String("creditgate account " + account)}
	params.AddMetadata(payments.MetaAccount, account)
	params.SetIdempotencyKey(customerKey(account))
	cus, err := sendIdempotent(ctx, p, func() (*stripego.Customer, error) { return p.client.V1Customers.Create(ctx, params) })
	if err != nil {
		return nil, apiError("create customer", err)
	}
	return cus, nil
}

// PaymentMethod returns the customer's card: its default payment method when it
// is a card (set in Stripe's dashboard or by an integration), else the card saved
// last; nil when there is none.
func (p *Provider) PaymentMethod(ctx context.Context, customerID string) (*payments.Card, error) {
	if customerID == "" {
		return nil, fmt.Errorf("%w: no customer id", payments.ErrInvalid)
	}
	params := &stripego.CustomerRetrieveParams{}
	params.AddExpand("invoice_settings.default_payment_method")
	cus, err := p.client.V1Customers.Retrieve(ctx, customerID, params)
	if err != nil {
		return nil, apiError("retrieve customer", err)
	}
	if cus.Deleted {
		return nil, nil
	}
	if cus.InvoiceSettings != nil {
		if card := cardOf(cus.InvoiceSettings.DefaultPaymentMethod); card != nil {
			return card, nil
		}
	}
	list := p.client.V1Customers.ListPaymentMethods(ctx, &stripego.CustomerListPaymentMethodsParams{
		Customer:   stripego.String(customerID),
		Type:       stripego.String(string(stripego.PaymentMethodTypeCard)),
		ListParams: stripego.ListParams{Limit: stripego.Int64(1), Single: true},
	})
	if err := list.Err(); err != nil {
		return nil, apiError("list payment methods", err)
	}
	for _, pm := range list.Data() {
		if card := cardOf(pm); card != nil {
			return card, nil
		}
	}
	return nil, nil
}

func cardOf(pm *stripego.PaymentMethod) *payments.Card {
	if pm == nil || pm.Card == nil || pm.Type != stripego.PaymentMethodTypeCard {
		return nil
	}
	return &payments.Card{ID: pm.ID, Brand: string(pm.Card.Brand), Last4: pm.Card.Last4,
		ExpMonth: int(pm.Card.ExpMonth), ExpYear: int(pm.Card.ExpYear)}
}
