package recharge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/notify"
)

// Charger pays auto-recharges. Two implement it: WebhookCharger, the operator's
// own charger service (billing.auto_recharge.charger: webhook), and
// ProviderCharger, an off-session charge of the account's saved card at the
// payment provider (charger: stripe or demo).
type Charger interface {
	// Name is the charger's config name ("webhook", "stripe", "demo"), for logs
	// and metrics.
	Name() string
	// Charge pays rc. It is idempotent by rc.ID: the worker calls it again with
	// the same recharge after a crash, a lost answer or a lease that ran out,
	// and the charger must then not charge twice. A Payment is a definite answer;
	// an error means the outcome is unknown (no answer, a timeout, a provider
	// 5xx), and the recharge stays pending for the next sweep to charge again
	// with the same id.
	Charge(ctx context.Context, rc billing.Recharge) (Payment, error)
	// MaxDuration bounds one Charge, retries included: the worker's lease on the
	// recharge is that plus a margin.
	MaxDuration() time.Duration
}

// Result is a charger's definite answer, and the value of the metrics' result
// label.
type Result string

// The results of a Charge.
const (
	// Paid: the money is taken; the recharge is credited.
	Paid Result = "paid"
	// Pending: the payment settles later (a bank debit); the provider's
	// RechargeSucceeded or RechargeFailed event through its webhook ends it.
	Pending Result = "pending"
	// Declined: the card was refused; the recharge fails (auto_recharge.failed
	// notice, back-off).
	Declined Result = "declined"
	// RequiresAction: the bank wants the cardholder to authenticate, which an
	// off-session charge cannot do; the recharge fails, and the customer pays on
	// the Billing page instead.
	RequiresAction Result = "requires_action"
	// NoCard: the account has no saved card at the provider; the recharge fails.
	NoCard Result = "no_card"
	// Refused: the charger refused the request itself (the webhook answered
	// non-2xx; the provider rejected the parameters); sending it again cannot
	// succeed, so the recharge fails.
	Refused Result = "refused"
)

// Payment is a charger's definite answer to a Charge.
type Payment struct {
	Result Result
	// PaymentRef is the provider's payment id (Stripe: the PaymentIntent), kept
	// on the recharge's grant event and matched by later refunds and disputes.
	// Empty for the webhook charger.
	PaymentRef string
	// Reason says, in words a customer reads (the ledger event, the
	// auto_recharge.failed notice, the Billing page), why a recharge failed.
	Reason string
}

// WebhookCharger is the Part-1 charger: creditgate POSTs a signed
// auto_recharge request to the operator's charger service, and a 2xx means
// paid. The charger receives the same recharge_id and webhook-id on every
// attempt, so it can be idempotent.
type WebhookCharger struct {
	Sender Sender
}

var _ Charger = WebhookCharger{}

// Name is "webhook".
func (WebhookCharger) Name() string { return "webhook" }

// MaxDuration is the Sender's.
func (c WebhookCharger) MaxDuration() time.Duration { return c.Sender.MaxDuration() }

// chargeRequest is the charger webhook's body.
type chargeRequest struct {
	Type       string       `json:"type"` // "auto_recharge"
	RechargeID string       `json:"recharge_id"`
	Account    string       `json:"account"`
	Amount     money.Micros `json:"amount"`
	// MonthTotal is what auto-recharge credited the account in Month before this
	// recharge (manual top-ups excluded).
	MonthTotal money.Micros `json:"month_total"`
	Month      string       `json:"month"` // calendar month, UTC: "2006-01"
}

// chargeMessageID is the webhook-id of a recharge's charger request: derived from
// what the store keeps for the recharge, so every attempt, every sweep that
// performs it again and every proxy sends the same id.
func chargeMessageID(rc billing.Recharge) string {
	return notify.MessageID("auto_recharge", rc.Account, rc.ID, strconv.FormatInt(rc.StartedAt.UnixMilli(), 10))
}

// Charge POSTs the auto_recharge request. A 2xx is Paid; an answered non-2xx is
// Refused; no answer is an error (the outcome is unknown).
func (c WebhookCharger) Charge(ctx context.Context, rc billing.Recharge) (Payment, error) {
	body, err := json.Marshal(chargeRequest{Type: "auto_recharge", RechargeID: rc.ID, Account: rc.Account, Amount: rc.Amount, MonthTotal: rc.MonthTotal, Month: rc.Month})
	if err != nil {
		return Payment{}, fmt.Errorf("encoding the charger request: %w", err)
	}
	err = c.Sender.Send(ctx, notify.Message{ID: chargeMessageID(rc), Event: "auto_recharge", Body: body})
	if err == nil {
		return Payment{Result: Paid}, nil
	}
	var de *notify.DeliveryError
	if errors.As(err, &de) && de.Answered() {
		return Payment{Result: Refused, Reason: fmt.Sprintf("the charger refused the payment (HTTP %d)", de.Status)}, nil
	}
	return Payment{}, err
}
