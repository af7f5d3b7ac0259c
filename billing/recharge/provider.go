package recharge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/payments"
)

// Profiles finds an account's saved card (billing.PurchaseStore implements it).
type Profiles interface {
	GetPaymentProfile(ctx context.Context, account string) (billing.PaymentProfile, error)
}

// DefaultProviderTimeout bounds one ProviderCharger.Charge: the Stripe provider's
// requests time out after 30 s and are resent twice after no answer.
const DefaultProviderTimeout = 2 * time.Minute

// ResendWindow is how long after a recharge started a ProviderCharger still
// sends its charge again. Stripe keeps an idempotency key for 24 hours; a charge
// resent after that would be a second PaymentIntent, a second charge. So a
// recharge whose answer was lost and that is still pending this late fails
// instead, and if the first charge did go through, the provider's
// RechargeSucceeded event credits it (a failed recharge is still credited when
// its payment arrives).
const ResendWindow = 23 * time.Hour

// NoCardReason is the failure reason of a recharge for an account without a
// saved card.
const NoCardReason = "no card on file: buy credit on the Billing page with \"save card\" ticked to turn auto-recharge on"

// ProviderCharger pays a recharge with an off-session charge of the account's
// saved card at the payment provider (Stripe, or the demo), whose idempotency
// key is the recharge id.
type ProviderCharger struct {
	// Provider charges the card (payments.provider).
	Provider payments.Provider
	// Profiles holds each account's customer and saved card.
	Profiles Profiles
	// Timeout bounds one charge (default DefaultProviderTimeout).
	Timeout time.Duration
	// Now is the clock of ResendWindow (default time.Now).
	Now func() time.Time
}

var _ Charger = (*ProviderCharger)(nil)

// Name is the provider's ("stripe", "demo").
func (c *ProviderCharger) Name() string { return c.Provider.Name() }

// MaxDuration is Timeout.
func (c *ProviderCharger) MaxDuration() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultProviderTimeout
}

func (c *ProviderCharger) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// Charge charges the account's saved card for rc.Amount.
func (c *ProviderCharger) Charge(ctx context.Context, rc billing.Recharge) (Payment, error) {
	profile, err := c.Profiles.GetPaymentProfile(ctx, rc.Account)
	if err != nil && !errors.Is(err, billing.ErrAccountNotFound) {
		return Payment{}, fmt.Errorf("reading the payment profile: %w", err)
	}
	if profile.CustomerID == "" || profile.PaymentMethodID == "" || (profile.Provider != "" && profile.Provider != c.Provider.Name()) {
		return Payment{Result: NoCard, Reason: NoCardReason}, nil
	}
	if rc.Drives > 1 {
		if age := c.now().Sub(rc.StartedAt); age > ResendWindow {
			return Payment{Result: Refused, Reason: fmt.Sprintf(
				"%s did not answer the charge for %s; it is not sent again, because the provider forgets its idempotency key after 24 hours (if the charge went through, its payment event credits it)",
				c.Provider.Name(), age.Round(time.Minute))}, nil
		}
	}
	res, err := c.Provider.ChargeSaved(ctx, payments.Charge{
		ID: rc.ID, Account: rc.Account, CustomerID: profile.CustomerID, PaymentMethodID: profile.PaymentMethodID, Amount: rc.Amount,
	})
	if err != nil {
		if errors.Is(err, payments.ErrRejected) || errors.Is(err, payments.ErrInvalid) {
			// The error text of the payments package names the request, never a secret.
			return Payment{Result: Refused, Reason: err.Error()}, nil
		}
		return Payment{}, err
	}
	switch res.Status {
	case payments.ChargeSucceeded:
		return Payment{Result: Paid, PaymentRef: res.PaymentRef}, nil
	case payments.ChargeProcessing:
		return Payment{Result: Pending, PaymentRef: res.PaymentRef}, nil
	case payments.ChargeRequiresAction:
		return Payment{Result: RequiresAction, PaymentRef: res.PaymentRef,
			Reason: "the bank asks the cardholder to authenticate this payment, which an automatic charge cannot do: buy credit on the Billing page"}, nil
	case payments.ChargeDeclined:
		return Payment{Result: Declined, PaymentRef: res.PaymentRef, Reason: declineReason(res)}, nil
	}
	return Payment{}, fmt.Errorf("%s answered the charge with status %q", c.Provider.Name(), res.Status)
}

// declineReason is the card network's words and code: "Your card has
// insufficient funds. (insufficient_funds)".
func declineReason(res payments.ChargeResult) string {
	switch {
	case res.Reason != "" && res.DeclineCode != "":
		return res.Reason + " (" + res.DeclineCode + ")"
	case res.Reason != "":
		return res.Reason
	case res.DeclineCode != "":
		return "the card was declined (" + res.DeclineCode + ")"
	}
	return "the card was declined"
}
