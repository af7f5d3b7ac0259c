package metrics_test

import (
	"errors"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/purchase"
	"github.com/creditgate/creditgate/billing/recharge"
	"github.com/creditgate/creditgate/metrics"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/notify"
	"github.com/creditgate/creditgate/payments"
)

// exercisePayments makes every vector of money coming in show up in the output.
func exercisePayments(m *metrics.Metrics) {
	m.PurchaseStarted("stripe", 10*money.Dollar)
	m.PurchaseEnded("stripe", billing.PurchasePaid, 10*money.Dollar)
	m.Event("stripe", payments.CheckoutPaid, purchase.Credited)
	m.TakenBack("stripe", payments.Refunded, 6*money.Dollar, 4*money.Dollar)
	m.RechargeDone(recharge.Report{Charger: "stripe", Result: recharge.Paid, Amount: 5 * money.Dollar, Credited: true})
	o := m.WebhookObserver(metrics.WebhookNotices)
	o.Attempt(notify.Attempt{Event: billing.NoticeBalanceLow, N: 1, Status: 200, Outcome: notify.OutcomeOK, Last: true})
	o.Done(notify.Delivery{Event: billing.NoticeBalanceLow, Attempts: 1, Outcome: notify.OutcomeOK, Duration: 20 * time.Millisecond})
	m.NoticeDropped(billing.NoticeBalanceLow)
	m.ToppedUp(billing.SourcePurchase, 5*money.Dollar)
	m.Adjusted(-money.Dollar)
}

func TestMoneyComingIn(t *testing.T) {
	m := newMetrics(t, nil)
	g := m.Gatherer()
	m.PurchaseStarted("stripe", 10*money.Dollar)
	m.PurchaseStarted("stripe", 25*money.Dollar)
	m.PurchaseEnded("stripe", billing.PurchasePaid, 10*money.Dollar)
	m.PurchaseEnded("stripe", billing.PurchaseExpired, 0)
	m.PurchaseEnded("paypal", billing.PurchaseStatus("weird"), 0) // bounded labels
	m.RechargeDone(recharge.Report{Charger: "webhook", Result: recharge.Paid, Amount: 5 * money.Dollar, Credited: true})
	m.RechargeDone(recharge.Report{Charger: "stripe", Result: recharge.Paid, Amount: 5 * money.Dollar}) // a replay: not credited again
	m.RechargeDone(recharge.Report{Charger: "stripe", Result: recharge.Declined, Amount: 5 * money.Dollar})
	m.RechargeDone(recharge.Report{Charger: "my-own", Result: recharge.Result("made up")})
	m.Event("stripe", payments.CheckoutPaid, purchase.Credited)
	m.Event("stripe", payments.CheckoutPaid, purchase.Replayed)
	m.Event("stripe", "", purchase.BadSig)
	m.Event("stripe", payments.EventKind("new_kind"), purchase.Outcome("new"))
	m.TakenBack("stripe", payments.Refunded, 6*money.Dollar, 4*money.Dollar)
	m.TakenBack("stripe", payments.Disputed, 2*money.Dollar, 0)
	charger := m.WebhookObserver(metrics.WebhookCharger)
	charger.Attempt(notify.Attempt{Event: "auto_recharge", N: 1, Err: errors.New("timeout"), Outcome: notify.OutcomeNoAnswer})
	charger.Attempt(notify.Attempt{Event: "auto_recharge", N: 2, Status: 200, Outcome: notify.OutcomeOK, Last: true})
	charger.Done(notify.Delivery{Event: "auto_recharge", Attempts: 2, Outcome: notify.OutcomeOK, Duration: time.Second})
	m.NoticeDropped(billing.NoticeAutoRechargeFailed)
	m.NoticeDropped("made.up")
	m.ToppedUp(billing.SourcePurchase, 25*money.Dollar)
	m.ToppedUp(billing.SourcePurchase, 5*money.Dollar)
	m.ToppedUp(billing.SourcePromo, 3*money.Dollar)
	m.ToppedUp("mystery", money.Dollar)
	m.Adjusted(2 * money.Dollar)
	m.Adjusted(-150 * money.Cent)
	m.Adjusted(-50 * money.Cent)

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"creditgate_purchases_total", map[string]string{"provider": "stripe", "status": "started"}, 2},
		{"creditgate_purchases_total", map[string]string{"provider": "stripe", "status": "paid"}, 1},
		{"creditgate_purchases_total", map[string]string{"provider": "stripe", "status": "expired"}, 1},
		{"creditgate_purchases_total", map[string]string{"provider": "other", "status": "other"}, 1},
		{"creditgate_credited_micro_usd_total", map[string]string{"source": "purchase"}, 10e6},
		{"creditgate_credited_micro_usd_total", map[string]string{"source": "auto_recharge"}, 5e6},
		{"creditgate_auto_recharges_total", map[string]string{"charger": "webhook", "result": "paid"}, 1},
		{"creditgate_auto_recharges_total", map[string]string{"charger": "stripe", "result": "paid"}, 1},
		{"creditgate_auto_recharges_total", map[string]string{"charger": "stripe", "result": "declined"}, 1},
		{"creditgate_auto_recharges_total", map[string]string{"charger": "other", "result": "other"}, 1},
		{"creditgate_payment_events_total", map[string]string{"provider": "stripe", "kind": "checkout_paid", "outcome": "credited"}, 1},
		{"creditgate_payment_events_total", map[string]string{"provider": "stripe", "kind": "checkout_paid", "outcome": "replayed"}, 1},
		{"creditgate_payment_events_total", map[string]string{"provider": "stripe", "kind": "none", "outcome": "bad_signature"}, 1},
		{"creditgate_payment_events_total", map[string]string{"provider": "stripe", "kind": "other", "outcome": "other"}, 1},
		{"creditgate_payment_reversals_total", map[string]string{"kind": "refund"}, 1},
		{"creditgate_payment_reversals_total", map[string]string{"kind": "dispute"}, 1},
		{"creditgate_credit_taken_back_micro_usd_total", map[string]string{"kind": "refund"}, 6e6},
		{"creditgate_credit_taken_back_micro_usd_total", map[string]string{"kind": "dispute"}, 2e6},
		{"creditgate_credit_taken_back_short_micro_usd_total", map[string]string{"kind": "refund"}, 4e6},
		{"creditgate_credit_taken_back_short_micro_usd_total", map[string]string{"kind": "dispute"}, 0},
		{"creditgate_webhook_attempts_total", map[string]string{"webhook": "charger", "outcome": "no_answer"}, 1},
		{"creditgate_webhook_attempts_total", map[string]string{"webhook": "charger", "outcome": "ok"}, 1},
		{"creditgate_webhook_attempts_total", map[string]string{"webhook": "notices", "outcome": "refused"}, 0},
		{"creditgate_webhook_deliveries_total", map[string]string{"webhook": "charger", "event": "auto_recharge", "outcome": "ok"}, 1},
		{"creditgate_webhook_delivery_duration_seconds", map[string]string{"webhook": "charger"}, 1},
		{"creditgate_notices_dropped_total", map[string]string{"event": billing.NoticeAutoRechargeFailed}, 1},
		{"creditgate_notices_dropped_total", map[string]string{"event": "other"}, 1},
		{"creditgate_topups_total", map[string]string{"source": "purchase"}, 2},
		{"creditgate_topups_total", map[string]string{"source": "promo"}, 1},
		{"creditgate_topups_total", map[string]string{"source": "other"}, 1},
		{"creditgate_topup_micro_usd_total", map[string]string{"source": "purchase"}, 30e6},
		{"creditgate_topup_micro_usd_total", map[string]string{"source": "promo"}, 3e6},
		{"creditgate_adjustments_total", map[string]string{"direction": "credit"}, 1},
		{"creditgate_adjustments_total", map[string]string{"direction": "debit"}, 2},
		{"creditgate_adjusted_micro_usd_total", map[string]string{"direction": "credit"}, 2e6},
		{"creditgate_adjusted_micro_usd_total", map[string]string{"direction": "debit"}, 2e6},
	}
	for _, tt := range tests {
		if got := sample(t, g, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
