package stripe

import (
	"context"
	"errors"
	"fmt"

	stripego "github.com/stripe/stripe-go/v85"

	"github.com/creditgate/creditgate/payments"
)

// ChargeSaved charges a saved card off-session: a PaymentIntent confirmed at once
// (confirm, off_session) with metadata creditgate_account and creditgate_recharge,
// and the recharge id as its Idempotency-Key, so resending it after a lost answer
// returns the first PaymentIntent instead of charging again. Redirect-based
// payment methods are excluded (allow_redirects never): nobody is there to follow
// a redirect.
func (p *Provider) ChargeSaved(ctx context.Context, c payments.Charge) (payments.ChargeResult, error) {
	if err := c.Validate(); err != nil {
		return payments.ChargeResult{}, err
	}
	cents, err := payments.ToMinor(c.Amount)
	if err != nil {
		return payments.ChargeResult{}, err
	}
	params := &stripego.PaymentIntentCreateParams{
		Amount:        stripego.Int64(cents),
		Currency:      stripego.String(string(p.currency)),
		Customer:      stripego.String(c.CustomerID),
		PaymentMethod: stripego.String(c.PaymentMethodID),
		Confirm:       stripego.Bool(true),
		OffSession:    stripego.Bool(true),
		Description:   stripego.String(p.productName + " auto-recharge for " + c.Account),
		AutomaticPaymentMethods: &stripego.PaymentIntentCreateAutomaticPaymentMethodsParams{
			Enabled:        stripego.Bool(true),
			AllowRedirects: stripego.String("never"),
		},
	}
	params.AddMetadata(payments.MetaAccount, c.Account)
	params.AddMetadata(payments.MetaRecharge, c.ID)
	params.SetIdempotencyKey(c.ID)
	pi, err := sendIdempotent(ctx, p, func() (*stripego.PaymentIntent, error) { return p.client.V1PaymentIntents.Create(ctx, params) })
	if err != nil {
		var se *stripego.Error
		if errors.As(err, &se) && se.Type == stripego.ErrorTypeCard {
			return declined(se), nil
		}
		return payments.ChargeResult{}, apiError("charge saved card", err)
	}
	return chargeResult(pi)
}

// declined is the result of a card error (HTTP 402): a decline, or the bank asking
// for authentication the off-session charge cannot give.
func declined(se *stripego.Error) payments.ChargeResult {
	res := payments.ChargeResult{Status: payments.ChargeDeclined, DeclineCode: string(se.DeclineCode), Reason: se.Msg}
	if res.DeclineCode == "" {
		res.DeclineCode = string(se.Code)
	}
	if se.Code == stripego.ErrorCodeAuthenticationRequired {
		res.Status = payments.ChargeRequiresAction
	}
	if se.PaymentIntent != nil {
		res.PaymentRef = se.PaymentIntent.ID
	}
	return res
}

// chargeResult reads a PaymentIntent's status.
func chargeResult(pi *stripego.PaymentIntent) (payments.ChargeResult, error) {
	res := payments.ChargeResult{PaymentRef: pi.ID}
	switch pi.Status {
	case stripego.PaymentIntentStatusSucceeded:
		res.Status = payments.ChargeSucceeded
	case stripego.PaymentIntentStatusProcessing:
		res.Status = payments.ChargeProcessing
	case stripego.PaymentIntentStatusRequiresAction:
		res.Status, res.DeclineCode = payments.ChargeRequiresAction, string(stripego.ErrorCodeAuthenticationRequired)
		res.Reason = "The bank asks the cardholder to authenticate this payment."
	case stripego.PaymentIntentStatusRequiresPaymentMethod, stripego.PaymentIntentStatusCanceled:
		res.Status, res.DeclineCode, res.Reason = payments.ChargeDeclined, string(pi.Status), "The payment was not completed."
		if e := pi.LastPaymentError; e != nil {
			res.DeclineCode, res.Reason = string(e.DeclineCode), e.Msg
			if res.DeclineCode == "" {
				res.DeclineCode = string(e.Code)
			}
		}
	default:
		return res, fmt.Errorf("stripe charge saved card: PaymentIntent %s is %q after confirmation", pi.ID, pi.Status)
	}
	return res, nil
}
