package purchase

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/payments"
)

// Outcome is what HandleEvent did with an event, for the log and the metrics'
// outcome label.
type Outcome string

// The outcomes.
const (
	Credited   Outcome = "credited"   // a purchase or a recharge was credited
	Ended      Outcome = "ended"      // a purchase became failed or expired, or a recharge failed
	CardSaved  Outcome = "card_saved" // the account's saved card was recorded
	TookBack   Outcome = "taken_back" // a refund or dispute took credit back (or recorded it spent)
	Replayed   Outcome = "replayed"   // already done: a duplicate, a replay, or an event out of order
	Waiting    Outcome = "waiting"    // nothing to do yet (a checkout paid by a bank debit that settles later)
	Ignored    Outcome = "ignored"    // not creditgate's, or a type creditgate does not act on
	Unknown    Outcome = "unknown"    // carries creditgate's ids, but the ledger knows no such purchase, recharge or payment
	Failed     Outcome = "error"      // the store failed: answered 5xx, the provider retries
	BadSig     Outcome = "bad_signature"
	Unusable   Outcome = "invalid"     // signed, but creditgate cannot use it (another API version or currency…)
	TooLarge   Outcome = "too_large"   // the body was over the webhook's limit
	NotAllowed Outcome = "not_allowed" // not a POST
)

// HandleEvent acts on one provider event (see payments.EventKind for each kind)
// and reports what it did. Every kind is idempotent: a replayed or duplicated
// event, or one that arrives after a later one, changes nothing more. An error
// means the ledger could not be updated: answer 5xx so that the provider sends
// the event again. Events about purchases, recharges or payments the ledger does
// not know are logged (at error when money was taken) and not retried: retrying
// cannot make them known.
func (s *Service) HandleEvent(ctx context.Context, ev payments.Event) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	h := eventHandling{s: s, ev: ev}
	outcome, err := h.handle(ctx)
	if err != nil {
		outcome = Failed
	}
	if s.Observer != nil {
		s.Observer.Event(s.providerName(), ev.Kind, outcome)
	}
	h.logLine(outcome, err)
	return outcome, err
}

// eventHandling is one HandleEvent: the event, and what the log line reports.
type eventHandling struct {
	s      *Service
	ev     payments.Event
	fields []zap.Field
	// alarm raises the log line to error: money was taken that creditgate
	// could not credit.
	alarm string
}

func (h *eventHandling) note(f ...zap.Field) { h.fields = append(h.fields, f...) }

func (h *eventHandling) handle(ctx context.Context) (Outcome, error) {
	s, ev := h.s, h.ev
	switch ev.Kind {
	case payments.CheckoutPaid:
		return h.checkoutPaid(ctx)
	case payments.CheckoutPending:
		return Waiting, nil
	case payments.CheckoutFailed:
		return h.endPurchase(ctx, billing.PurchaseFailed, "the payment failed")
	case payments.CheckoutExpired:
		return h.endPurchase(ctx, billing.PurchaseExpired, "the checkout expired unpaid")
	case payments.CardSaved:
		return h.cardSaved(ctx)
	case payments.Refunded:
		return h.takeBack(ctx, "refund")
	case payments.Disputed:
		reason := "dispute"
		if ev.Reason != "" {
			reason += ": " + ev.Reason
		}
		return h.takeBack(ctx, reason)
	case payments.RechargeSucceeded, payments.RechargeFailed:
		if s.Recharges == nil {
			return Failed, errors.New("purchase: a recharge event arrived but no recharge worker is configured")
		}
		if ev.Kind == payments.RechargeSucceeded {
			return h.rechargePaid(ctx)
		}
		return h.rechargeFailed(ctx)
	case payments.Ignored:
		return Ignored, nil
	}
	return Ignored, nil
}

func (h *eventHandling) checkoutPaid(ctx context.Context) (Outcome, error) {
	ev := h.ev
	report := billing.PaymentReport{EventID: ev.ID, Amount: ev.Amount, PaymentRef: ev.PaymentRef}
	if ev.PaymentMethodID != "" {
		// The card was saved with the customer's consent (only then does a
		// provider report its payment method here).
		report.CustomerID, report.PaymentMethodID = ev.CustomerID, ev.PaymentMethodID
	}
	res, err := h.s.Store.CompletePurchase(ctx, h.s.policy(), ev.Account, ev.PurchaseID, report)
	switch {
	case errors.Is(err, billing.ErrPurchaseNotFound), errors.Is(err, billing.ErrAccountNotFound):
		h.alarm = "a paid purchase is unknown to the ledger: nothing was credited; credit it by hand after checking the payment"
		return Unknown, nil
	case err != nil:
		return Failed, err
	}
	h.note(zap.Stringer("credited", res.Grant.Amount), zap.Stringer("debt_repaid", res.DebtRepaid), zap.Stringer("balance_after", res.BalanceAfter))
	if res.Replayed {
		return Replayed, nil
	}
	if h.s.Observer != nil {
		h.s.Observer.PurchaseEnded(h.s.providerName(), billing.PurchasePaid, res.Grant.Amount)
	}
	return Credited, nil
}

func (h *eventHandling) endPurchase(ctx context.Context, status billing.PurchaseStatus, reason string) (Outcome, error) {
	ev := h.ev
	before, err := h.s.Store.GetPurchase(ctx, ev.Account, ev.PurchaseID)
	switch {
	case errors.Is(err, billing.ErrPurchaseNotFound), errors.Is(err, billing.ErrAccountNotFound):
		return Unknown, nil
	case err != nil:
		return Failed, err
	}
	if before.Status != billing.PurchasePending {
		h.note(zap.String("status", string(before.Status)))
		return Replayed, nil // already ended, or paid: events arrive out of order
	}
	p, err := h.s.Store.EndPurchase(ctx, ev.Account, ev.PurchaseID, status, reason)
	if err != nil {
		return Failed, err
	}
	h.note(zap.String("status", string(p.Status)))
	if p.Status != status {
		return Replayed, nil // paid meanwhile
	}
	if h.s.Observer != nil {
		h.s.Observer.PurchaseEnded(h.s.providerName(), status, 0)
	}
	return Ended, nil
}

func (h *eventHandling) cardSaved(ctx context.Context) (Outcome, error) {
	ev := h.ev
	profile, err := h.s.Store.GetPaymentProfile(ctx, ev.Account)
	switch {
	case errors.Is(err, billing.ErrAccountNotFound):
		return Unknown, nil
	case err != nil:
		return Failed, err
	}
	saved := billing.PaymentProfile{Provider: h.s.providerName(), CustomerID: ev.CustomerID, PaymentMethodID: ev.PaymentMethodID, Email: profile.Email}
	if saved == profile {
		return Replayed, nil
	}
	if err := h.s.Store.SetPaymentProfile(ctx, ev.Account, saved); err != nil {
		return Failed, err
	}
	return CardSaved, nil
}

func (h *eventHandling) takeBack(ctx context.Context, reason string) (Outcome, error) {
	ev := h.ev
	res, err := h.s.Store.TakeBack(ctx, billing.TakeBackRequest{PaymentRef: ev.PaymentRef, Upto: ev.Amount, Reason: reason, EventID: ev.ID})
	switch {
	case errors.Is(err, billing.ErrPaymentNotFound):
		return Unknown, nil // another integration's payment, or one creditgate never credited
	case err != nil:
		return Failed, err
	}
	h.note(zap.String("reason", reason), zap.Stringer("taken", res.Taken), zap.Stringer("taken_total", res.Total), zap.Stringer("short", res.Short))
	if res.Account != "" && ev.Account == "" {
		h.note(zap.String("account", res.Account))
	}
	if res.Taken == 0 && res.Short == 0 {
		return Replayed, nil
	}
	if h.s.Observer != nil {
		h.s.Observer.TakenBack(h.s.providerName(), ev.Kind, res.Taken, res.Short)
	}
	return TookBack, nil
}

func (h *eventHandling) rechargePaid(ctx context.Context) (Outcome, error) {
	ev := h.ev
	res, err := h.s.Recharges.RechargePaid(ctx, ev.Account, ev.RechargeID, ev.PaymentRef)
	switch {
	case errors.Is(err, billing.ErrRechargeNotPending), errors.Is(err, billing.ErrAccountNotFound):
		h.alarm = "a paid auto-recharge is unknown to the ledger: nothing was credited; credit it by hand after checking the payment"
		return Unknown, nil
	case err != nil:
		return Failed, err
	}
	h.note(zap.Stringer("credited", res.Grant.Amount), zap.Stringer("balance_after", res.BalanceAfter))
	if res.Replayed {
		return Replayed, nil
	}
	return Credited, nil
}

func (h *eventHandling) rechargeFailed(ctx context.Context) (Outcome, error) {
	ev := h.ev
	reason := declineReason(ev)
	h.note(zap.String("reason", reason))
	err := h.s.Recharges.RechargeFailed(ctx, ev.Account, ev.RechargeID, reason)
	switch {
	case errors.Is(err, billing.ErrRechargeNotPending):
		return Replayed, nil // its synchronous decline was recorded already, or it was paid
	case errors.Is(err, billing.ErrAccountNotFound):
		return Unknown, nil
	case err != nil:
		return Failed, err
	}
	return Ended, nil
}

// declineReason is a failed recharge's reason as the worker words a synchronous
// decline: "Your card has insufficient funds. (insufficient_funds)".
func declineReason(ev payments.Event) string {
	switch {
	case ev.Reason != "" && ev.DeclineCode != "":
		return ev.Reason + " (" + ev.DeclineCode + ")"
	case ev.Reason != "":
		return ev.Reason
	case ev.DeclineCode != "":
		return fmt.Sprintf("the payment failed (%s)", ev.DeclineCode)
	}
	return "the payment failed"
}

// logLine writes the event's one log line: ids, kind, amount, outcome. Never a
// secret or card data (provider ids only).
func (h *eventHandling) logLine(outcome Outcome, err error) {
	ev := h.ev
	fields := []zap.Field{zap.String("provider", h.s.providerName()), zap.String("event_id", ev.ID), zap.String("type", ev.Type),
		zap.String("kind", string(ev.Kind)), zap.String("outcome", string(outcome)), zap.Bool("livemode", ev.Livemode)}
	str := func(k, v string) {
		if v != "" {
			fields = append(fields, zap.String(k, v))
		}
	}
	str("account", ev.Account)
	str("purchase_id", ev.PurchaseID)
	str("recharge_id", ev.RechargeID)
	str("payment_ref", ev.PaymentRef)
	if ev.Amount != 0 || ev.Kind == payments.CheckoutPaid {
		fields = append(fields, zap.Stringer("amount", ev.Amount))
	}
	fields = append(fields, h.fields...)
	level, msg := zapcore.InfoLevel, "payment event"
	switch {
	case err != nil:
		level = zapcore.ErrorLevel
		fields = append(fields, zap.Error(err))
		msg = "payment event: the ledger could not be updated; the provider will send it again"
	case h.alarm != "":
		level, msg = zapcore.ErrorLevel, "payment event: "+h.alarm
	case outcome == Unknown:
		level = zapcore.WarnLevel
	}
	h.s.log().Log(level, msg, fields...)
}

// OnPaid is the demo provider's Config.OnPaid: the demo checkout page's payment
// handled as a webhook event would be. Unlike a webhook, the page is shown to the
// customer, so an event the ledger cannot credit is an error there ("nothing was
// added"), not a silent 2xx.
func (s *Service) OnPaid(ctx context.Context, ev payments.Event) error {
	outcome, err := s.HandleEvent(ctx, ev)
	if err == nil && outcome == Unknown {
		return fmt.Errorf("purchase %s of account %s is unknown to the ledger", ev.PurchaseID, ev.Account)
	}
	return err
}
