package stripe

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

// SignatureHeader is the header Stripe signs webhooks in.
const SignatureHeader = "Stripe-Signature"

// Events is what the webhook endpoint must subscribe to; ParseWebhook answers
// Ignored for anything else.
var Events = []string{
	"checkout.session.completed",
	"checkout.session.async_payment_succeeded",
	"checkout.session.async_payment_failed",
	"checkout.session.expired",
	"payment_intent.succeeded",
	"payment_intent.payment_failed",
	"charge.refunded",
	"charge.dispute.created",
}

// ParseWebhook verifies a Stripe webhook and decodes it.
//
// The signature is checked by the library (webhook.ConstructEventWithOptions);
// the time window is checked here against now, both ways, because the library
// looks only at the past and only at its own clock: a signature more than
// payments.WebhookTolerance away is stale (a replay) or from the future (a wrong
// clock), ErrBadSignature either way. The library's API-version check stays on:
// an event rendered in another release than APIVersion may decode wrongly, so it
// is ErrInvalidEvent, whose message names both versions.
func (p *Provider) ParseWebhook(header http.Header, body []byte, now time.Time) (payments.Event, error) {
	sig := header.Get(SignatureHeader)
	if sig == "" {
		return payments.Event{}, badSignature("no %s header", SignatureHeader)
	}
	signedAt, err := signatureTime(sig)
	if err != nil {
		return payments.Event{}, err
	}
	if age := now.Sub(signedAt); age > payments.WebhookTolerance {
		return payments.Event{}, badSignature("signed %s ago, more than %s: a stale or replayed delivery", age.Round(time.Second), payments.WebhookTolerance)
	} else if -age > payments.WebhookTolerance {
		return payments.Event{}, badSignature("signed %s in the future, more than %s: check the clock", (-age).Round(time.Second), payments.WebhookTolerance)
	}
	if err := webhook.ValidatePayloadIgnoringTolerance(body, sig, p.webhookSecret); err != nil {
		return payments.Event{}, badSignature("%v", err)
	}
	ev, err := webhook.ConstructEventWithOptions(body, sig, p.webhookSecret, webhook.ConstructEventOptions{IgnoreTolerance: true})
	if err != nil {
		return payments.Event{}, fmt.Errorf("%w: %v", payments.ErrInvalidEvent, err)
	}
	return p.decode(&ev)
}

func badSignature(format string, args ...any) error {
	return fmt.Errorf("%w: %s", payments.ErrBadSignature, fmt.Sprintf(format, args...))
}

// signatureTime reads the header's one timestamp. The library verifies the
// signature with the last t= of the header; a header with several could pair a
// fresh t= (checked here) with an old signed one (checked there), so exactly one
// is required.
func signatureTime(sig string) (time.Time, error) {
	var at []string
	for _, pair := range strings.Split(sig, ",") {
		k, v, found := strings.Cut(pair, "=")
		if !found || strings.Contains(v, "=") {
			return time.Time{}, badSignature("malformed %s header", SignatureHeader)
		}
		if k == "t" {
			at = append(at, v)
		}
	}
	if len(at) != 1 {
		return time.Time{}, badSignature("%s header has %d timestamps, want one", SignatureHeader, len(at))
	}
	secs, err := strconv.ParseInt(at[0], 10, 64)
	if err != nil || secs < 0 {
		return time.Time{}, badSignature("malformed %s timestamp", SignatureHeader)
	}
	return time.Unix(secs, 0), nil
}

// decode maps a verified event to a payments.Event.
func (p *Provider) decode(ev *stripego.Event) (payments.Event, error) {
	out := payments.Event{ID: ev.ID, Kind: payments.Ignored, Type: string(ev.Type), Created: time.Unix(ev.Created, 0), Livemode: ev.Livemode}
	if ev.ID == "" {
		return out, invalidEvent(ev, "no event id")
	}
	if ev.Data == nil {
		return out, invalidEvent(ev, "no data")
	}
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded",
		"checkout.session.async_payment_failed", "checkout.session.expired":
		var cs stripego.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &cs); err != nil {
			return out, invalidEvent(ev, "checkout session: %v", err)
		}
		return p.checkoutEvent(ev, out, &cs)
	case "payment_intent.succeeded", "payment_intent.payment_failed":
		var pi stripego.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
			return out, invalidEvent(ev, "payment intent: %v", err)
		}
		return p.paymentIntentEvent(ev, out, &pi)
	case "charge.refunded":
		var ch stripego.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
			return out, invalidEvent(ev, "charge: %v", err)
		}
		return p.refundEvent(ev, out, &ch)
	case "charge.dispute.created":
		var dp stripego.Dispute
		if err := json.Unmarshal(ev.Data.Raw, &dp); err != nil {
			return out, invalidEvent(ev, "dispute: %v", err)
		}
		return p.disputeEvent(ev, out, &dp)
	}
	return out, nil
}

func invalidEvent(ev *stripego.Event, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s: %s", payments.ErrInvalidEvent, ev.Type, ev.ID, fmt.Sprintf(format, args...))
}

func (p *Provider) checkoutEvent(ev *stripego.Event, out payments.Event, cs *stripego.CheckoutSession) (payments.Event, error) {
	purchase := cs.Metadata[payments.MetaPurchase]
	if purchase == "" {
		return out, nil // not a creditgate checkout
	}
	account := cs.Metadata[payments.MetaAccount]
	if account == "" {
		account = cs.ClientReferenceID
	}
	if cs.ClientReferenceID != "" && cs.ClientReferenceID != account {
		return out, invalidEvent(ev, "client_reference_id %q and metadata %s %q disagree", cs.ClientReferenceID, payments.MetaAccount, account)
	}
	if err := ids(account, purchase, ""); err != nil {
		return out, invalidEvent(ev, "%v", err)
	}
	if cs.Mode != stripego.CheckoutSessionModePayment {
		return out, invalidEvent(ev, "mode %q, want payment", cs.Mode)
	}
	amount, err := p.amount(cs.Currency, cs.AmountTotal)
	if err != nil {
		return out, invalidEvent(ev, "%v", err)
	}
	out.Account, out.PurchaseID, out.CheckoutID, out.Amount = account, purchase, cs.ID, amount
	out.PaymentRef = cs.ID
	if cs.PaymentIntent != nil && cs.PaymentIntent.ID != "" {
		out.PaymentRef = cs.PaymentIntent.ID
		if pm := cs.PaymentIntent.PaymentMethod; pm != nil && cs.PaymentIntent.SetupFutureUsage == stripego.PaymentIntentSetupFutureUsageOffSession {
			out.PaymentMethodID = pm.ID // only when the event carries an expanded PaymentIntent
		}
	}
	if cs.Customer != nil {
		out.CustomerID = cs.Customer.ID
	}
	switch ev.Type {
	case "checkout.session.completed":
		switch cs.PaymentStatus {
		case stripego.CheckoutSessionPaymentStatusPaid:
			out.Kind = payments.CheckoutPaid
		case stripego.CheckoutSessionPaymentStatusUnpaid:
			out.Kind = payments.CheckoutPending
		default: // no_payment_required: creditgate never sells for nothing
			return out, invalidEvent(ev, "payment_status %q", cs.PaymentStatus)
		}
	case "checkout.session.async_payment_succeeded":
		out.Kind = payments.CheckoutPaid
	case "checkout.session.async_payment_failed":
		out.Kind = payments.CheckoutFailed
	case "checkout.session.expired":
		out.Kind = payments.CheckoutExpired
	}
	if out.Kind == payments.CheckoutPaid && amount <= 0 {
		return out, invalidEvent(ev, "paid with amount_total %d", cs.AmountTotal)
	}
	return out, nil
}

func (p *Provider) paymentIntentEvent(ev *stripego.Event, out payments.Event, pi *stripego.PaymentIntent) (payments.Event, error) {
	recharge, purchase := pi.Metadata[payments.MetaRecharge], pi.Metadata[payments.MetaPurchase]
	account := pi.Metadata[payments.MetaAccount]
	if recharge == "" && purchase == "" {
		return out, nil // not creditgate's
	}
	if err := ids(account, purchase, recharge); err != nil {
		return out, invalidEvent(ev, "%v", err)
	}
	out.Account, out.PaymentRef = account, pi.ID
	if pi.Customer != nil {
		out.CustomerID = pi.Customer.ID
	}
	if pi.PaymentMethod != nil {
		out.PaymentMethodID = pi.PaymentMethod.ID
	}
	if recharge == "" {
		// A purchase's PaymentIntent: Checkout's own events say whether it is
		// paid; this one only tells which card was saved.
		if ev.Type != "payment_intent.succeeded" || pi.SetupFutureUsage != stripego.PaymentIntentSetupFutureUsageOffSession ||
			out.CustomerID == "" || out.PaymentMethodID == "" {
			return ignored(out), nil
		}
		out.Kind, out.PurchaseID = payments.CardSaved, purchase
		return out, nil
	}
	amount, err := p.amount(pi.Currency, pi.Amount)
	if err != nil {
		return out, invalidEvent(ev, "%v", err)
	}
	out.RechargeID, out.Amount = recharge, amount
	if ev.Type == "payment_intent.succeeded" {
		out.Kind = payments.RechargeSucceeded
		return out, nil
	}
	out.Kind = payments.RechargeFailed
	if e := pi.LastPaymentError; e != nil {
		out.DeclineCode, out.Reason = string(e.DeclineCode), e.Msg
		if out.DeclineCode == "" {
			out.DeclineCode = string(e.Code)
		}
	}
	return out, nil
}

func (p *Provider) refundEvent(ev *stripego.Event, out payments.Event, ch *stripego.Charge) (payments.Event, error) {
	if ch.PaymentIntent == nil || ch.PaymentIntent.ID == "" {
		return out, nil // creditgate's payments are PaymentIntents
	}
	ours, err := p.paymentMeta(ev, &out, ch.Metadata)
	if err != nil {
		return out, err
	}
	refunded, err := p.amount(ch.Currency, ch.AmountRefunded)
	if err == nil {
		out.Total, err = p.amount(ch.Currency, ch.Amount)
	}
	if err != nil {
		if !ours {
			return ignored(out), nil // another integration's payment in another currency
		}
		return out, invalidEvent(ev, "%v", err)
	}
	out.Kind, out.Amount, out.PaymentRef, out.ChargeID = payments.Refunded, refunded, ch.PaymentIntent.ID, ch.ID
	if ch.Customer != nil {
		out.CustomerID = ch.Customer.ID
	}
	return out, nil
}

func (p *Provider) disputeEvent(ev *stripego.Event, out payments.Event, dp *stripego.Dispute) (payments.Event, error) {
	if dp.PaymentIntent == nil || dp.PaymentIntent.ID == "" {
		return out, nil
	}
	ours, err := p.paymentMeta(ev, &out, dp.Metadata)
	if err != nil {
		return out, err
	}
	amount, err := p.amount(dp.Currency, dp.Amount)
	if err != nil {
		if !ours {
			return ignored(out), nil
		}
		return out, invalidEvent(ev, "%v", err)
	}
	out.Kind, out.Amount, out.PaymentRef, out.Reason = payments.Disputed, amount, dp.PaymentIntent.ID, string(dp.Reason)
	if dp.Charge != nil {
		out.ChargeID = dp.Charge.ID
	}
	return out, nil
}

// paymentMeta copies the creditgate ids a charge's metadata carries (Stripe copies
// the PaymentIntent's metadata to its charge; a dispute has none). ours says
// whether there were any; without them the caller matches PaymentRef.
func (p *Provider) paymentMeta(ev *stripego.Event, out *payments.Event, meta map[string]string) (ours bool, err error) {
	account, purchase, recharge := meta[payments.MetaAccount], meta[payments.MetaPurchase], meta[payments.MetaRecharge]
	if account == "" && purchase == "" && recharge == "" {
		return false, nil
	}
	if err := ids(account, purchase, recharge); err != nil {
		return true, invalidEvent(ev, "%v", err)
	}
	out.Account, out.PurchaseID, out.RechargeID = account, purchase, recharge
	return true, nil
}

func ignored(e payments.Event) payments.Event {
	return payments.Event{ID: e.ID, Kind: payments.Ignored, Type: e.Type, Created: e.Created, Livemode: e.Livemode}
}

// ids checks the creditgate ids an event carries: an account, and a purchase or
// a recharge id when present.
func ids(account, purchase, recharge string) error {
	if err := payments.ValidAccount(account); err != nil {
		return fmt.Errorf("metadata %s: %w", payments.MetaAccount, err)
	}
	if purchase != "" {
		if err := payments.ValidID("purchase id", purchase); err != nil {
			return fmt.Errorf("metadata %s: %w", payments.MetaPurchase, err)
		}
	}
	if recharge != "" {
		if err := payments.ValidID("recharge id", recharge); err != nil {
			return fmt.Errorf("metadata %s: %w", payments.MetaRecharge, err)
		}
	}
	return nil
}

// amount converts an event's minor units, in the configured currency only.
func (p *Provider) amount(currency stripego.Currency, minor int64) (money.Micros, error) {
	if payments.Currency(currency) != p.currency {
		return 0, fmt.Errorf("currency %q, but payments.currency is %q", currency, p.currency)
	}
	return payments.FromMinor(minor)
}
