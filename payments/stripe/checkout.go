package stripe

import (
	"context"
	"time"

	stripego "github.com/stripe/stripe-go/v85"

	"github.com/creditgate/creditgate/payments"
)

// checkoutKey is the Idempotency-Key of a purchase's session: starting the same
// purchase again (a double click, a retry after a lost answer) returns the same
// session for the 24 hours Stripe keeps the key, which is a session's longest life.
func checkoutKey(purchase string) string { return "creditgate-checkout-" + purchase }

// StartCheckout creates the purchase's Checkout Session (mode payment, one line
// item of the amount). The account and purchase ids travel as client_reference_id
// and metadata on the session and on its PaymentIntent, so the completion, refund
// and dispute events map back to the purchase. With c.SaveCard the card is kept
// for off-session use (setup_future_usage off_session); without it, it is not.
func (p *Provider) StartCheckout(ctx context.Context, c payments.Checkout) (payments.CheckoutSession, error) {
	if err := c.Validate(); err != nil {
		return payments.CheckoutSession{}, err
	}
	cents, err := payments.ToMinor(c.Amount)
	if err != nil {
		return payments.CheckoutSession{}, err
	}
	customer := c.CustomerID
	if customer == "" {
		if customer, err = p.EnsureCustomer(ctx, c.Account, c.Email); err != nil {
			return payments.CheckoutSession{}, err
		}
	}
	meta := map[string]string{payments.MetaAccount: c.Account, payments.MetaPurchase: c.PurchaseID}
	piData := &stripego.CheckoutSessionCreatePaymentIntentDataParams{
		Description: stripego.String(p.productName + " for " + c.Account),
		Metadata:    meta,
	}
	if c.SaveCard {
		piData.SetupFutureUsage = stripego.String(string(stripego.PaymentIntentSetupFutureUsageOffSession))
	}
	params := &stripego.CheckoutSessionCreateParams{
		Mode:              stripego.String(string(stripego.CheckoutSessionModePayment)),
		ClientReferenceID: stripego.String(c.Account),
		Customer:          stripego.String(customer),
		SuccessURL:        stripego.String(c.SuccessURL),
		CancelURL:         stripego.String(c.CancelURL),
		LineItems: []*stripego.CheckoutSessionCreateLineItemParams{{
			Quantity: stripego.Int64(1),
			PriceData: &stripego.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:    stripego.String(string(p.currency)),
				UnitAmount:  stripego.Int64(cents),
				ProductData: &stripego.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripego.String(p.productName)},
			},
		}},
		PaymentIntentData: piData,
	}
	params.Metadata = meta
	params.SetIdempotencyKey(checkoutKey(c.PurchaseID))
	cs, err := sendIdempotent(ctx, p, func() (*stripego.CheckoutSession, error) {
		return p.client.V1CheckoutSessions.Create(ctx, params)
	})
	if err != nil {
		return payments.CheckoutSession{}, apiError("create checkout session", err)
	}
	return payments.CheckoutSession{ID: cs.ID, URL: cs.URL, ExpiresAt: time.Unix(cs.ExpiresAt, 0), CustomerID: customer}, nil
}

// ReceiptURL returns the Stripe receipt of a payment (a PaymentIntent id, as
// events carry in PaymentRef), or "" when it has none yet.
func (p *Provider) ReceiptURL(ctx context.Context, paymentRef string) (string, error) {
	if paymentRef == "" {
		return "", nil
	}
	params := &stripego.PaymentIntentRetrieveParams{}
	params.AddExpand("latest_charge")
	pi, err := p.client.V1PaymentIntents.Retrieve(ctx, paymentRef, params)
	if err != nil {
		return "", apiError("retrieve payment intent", err)
	}
	if pi.LatestCharge == nil {
		return "", nil
	}
	return pi.LatestCharge.ReceiptURL, nil
}
