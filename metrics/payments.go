package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/purchase"
	"github.com/creditgate/creditgate/billing/recharge"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/notify"
	"github.com/creditgate/creditgate/payments"
)

// Money coming in: purchases, auto-recharges, the payment provider's events,
// refunds and disputes, and the deliveries of creditgate's own webhooks (the
// charger and the notices). Metrics implements purchase.Observer and
// recharge.Observer, and WebhookObserver gives a notify.Observer per webhook.

var (
	_ purchase.Observer       = (*Metrics)(nil)
	_ recharge.Observer       = (*Metrics)(nil)
	_ recharge.NoticeObserver = (*Metrics)(nil)
)

// The label values of money coming in; anything else is OtherLabel.
var (
	providers      = []string{"stripe", "demo"}
	chargers       = []string{"webhook", "stripe", "demo"}
	purchaseStates = []string{"started", string(billing.PurchasePaid), string(billing.PurchaseFailed), string(billing.PurchaseExpired)}
	eventKinds     = []string{
		string(payments.CheckoutPaid), string(payments.CheckoutPending), string(payments.CheckoutFailed), string(payments.CheckoutExpired),
		string(payments.CardSaved), string(payments.RechargeSucceeded), string(payments.RechargeFailed),
		string(payments.Refunded), string(payments.Disputed), string(payments.Ignored),
	}
	eventOutcomes = []string{
		string(purchase.Credited), string(purchase.Ended), string(purchase.CardSaved), string(purchase.TookBack), string(purchase.Replayed),
		string(purchase.Waiting), string(purchase.Ignored), string(purchase.Unknown), string(purchase.Failed), string(purchase.BadSig),
		string(purchase.Unusable), string(purchase.TooLarge), string(purchase.NotAllowed),
	}
	rechargeResults = []string{
		string(recharge.Paid), string(recharge.Pending), string(recharge.Declined), string(recharge.RequiresAction), string(recharge.NoCard),
		string(recharge.Refused), string(recharge.NoAnswer), string(recharge.GaveUp),
	}
	reversalKinds   = []string{"refund", "dispute"}
	webhookNames    = []string{WebhookCharger, WebhookNotices}
	webhookOutcomes = []string{notify.OutcomeOK, notify.OutcomeRefused, notify.OutcomeNoAnswer, notify.OutcomeCanceled}
	webhookEvents   = []string{"auto_recharge", billing.NoticeBalanceLow, billing.NoticeBalanceExhausted, billing.NoticeCreditsExpiring, billing.NoticeAutoRechargeFailed}
)

// The webhook label values of WebhookObserver.
const (
	WebhookCharger = "charger" // billing.auto_recharge.webhook
	WebhookNotices = "notices" // notify.webhook
)

// webhookBuckets are delivery durations in seconds: a receiver answers in
// milliseconds; retries with back-off take seconds to a minute.
var webhookBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// paymentMetrics are the collectors of money coming in.
type paymentMetrics struct {
	purchases        *prometheus.CounterVec
	credited         *prometheus.CounterVec
	recharges        *prometheus.CounterVec
	events           *prometheus.CounterVec
	reversals        *prometheus.CounterVec
	takenBack        *prometheus.CounterVec
	takenBackShort   *prometheus.CounterVec
	webhookDelivered *prometheus.CounterVec
	webhookAttempts  *prometheus.CounterVec
	webhookDuration  *prometheus.HistogramVec
	noticesDropped   *prometheus.CounterVec
}

func newPaymentMetrics(counter func(name, help string, labels ...string) *prometheus.CounterVec) *paymentMetrics {
	p := &paymentMetrics{
		purchases: counter("purchases_total",
			"Purchases of credit by payment provider and status: started (a new checkout), then paid, failed or expired, each once per purchase.",
			"provider", "status"),
		credited: counter("credited_micro_usd_total",
			"Credit bought and credited, in micro-USD, by source: purchase (a paid checkout) or auto_recharge (a paid recharge, any charger). Replays are not counted.",
			"source"),
		recharges: counter("auto_recharges_total",
			"Auto-recharge outcomes by charger (webhook, stripe, demo) and result: paid, pending (settles by event), declined, requires_action, no_card, refused, no_answer (retried with the same id), gave_up.",
			"charger", "result"),
		events: counter("payment_events_total",
			"Payment provider events (webhook deliveries, and the demo page's payments) by provider, kind (none when the delivery did not parse) and outcome (credited, ended, card_saved, taken_back, replayed, waiting, ignored, unknown, error, bad_signature, invalid, too_large, not_allowed).",
			"provider", "kind", "outcome"),
		reversals: counter("payment_reversals_total",
			"Refunds and disputes that took credit back (or found it spent), by kind (refund, dispute).",
			"kind"),
		takenBack: counter("credit_taken_back_micro_usd_total",
			"Credit taken back by refunds and disputes, in micro-USD, by kind.",
			"kind"),
		takenBackShort: counter("credit_taken_back_short_micro_usd_total",
			"Money refunded or disputed whose credit had already been spent, so could not be taken back, in micro-USD, by kind: the operator's loss.",
			"kind"),
		webhookDelivered: counter("webhook_deliveries_total",
			"Deliveries of creditgate's own webhooks by webhook (charger, notices), event and outcome (ok, refused, no_answer, canceled), each with its retries.",
			"webhook", "event", "outcome"),
		webhookAttempts: counter("webhook_attempts_total",
			"HTTP requests of creditgate's own webhooks by webhook and outcome: a delivery retried twice is three attempts.",
			"webhook", "outcome"),
		noticesDropped: counter("notices_dropped_total",
			"Notices given up after billing's notice attempts (10 deliveries, each with its retries) all failed, by event: the receiver never got them.",
			"event"),
		webhookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "webhook_delivery_duration_seconds",
			Help: "Whole deliveries of creditgate's own webhooks, retries and back-off included, by webhook.", Buckets: webhookBuckets}, []string{"webhook"}),
	}
	// Series that alerts take rate() of exist from the start, at 0.
	for _, w := range webhookNames {
		for _, o := range webhookOutcomes {
			p.webhookAttempts.WithLabelValues(w, o)
		}
	}
	for _, k := range reversalKinds {
		p.takenBackShort.WithLabelValues(k)
	}
	return p
}

func (p *paymentMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{p.purchases, p.credited, p.recharges, p.events, p.reversals, p.takenBack, p.takenBackShort,
		p.webhookDelivered, p.webhookAttempts, p.webhookDuration, p.noticesDropped}
}

// bounded returns v when it is one of values, else OtherLabel.
func bounded(v string, values []string) string {
	for _, ok := range values {
		if v == ok {
			return v
		}
	}
	return OtherLabel
}

// PurchaseStarted implements purchase.Observer.
func (m *Metrics) PurchaseStarted(provider string, _ money.Micros) {
	m.pay.purchases.WithLabelValues(bounded(provider, providers), "started").Inc()
}

// PurchaseEnded implements purchase.Observer.
func (m *Metrics) PurchaseEnded(provider string, status billing.PurchaseStatus, amount money.Micros) {
	m.pay.purchases.WithLabelValues(bounded(provider, providers), bounded(string(status), purchaseStates)).Inc()
	if status == billing.PurchasePaid && amount > 0 {
		m.pay.credited.WithLabelValues(billing.SourcePurchase).Add(float64(amount))
	}
}

// Event implements purchase.Observer.
func (m *Metrics) Event(provider string, kind payments.EventKind, outcome purchase.Outcome) {
	k := "none"
	if kind != "" {
		k = bounded(string(kind), eventKinds)
	}
	m.pay.events.WithLabelValues(bounded(provider, providers), k, bounded(string(outcome), eventOutcomes)).Inc()
}

// TakenBack implements purchase.Observer.
func (m *Metrics) TakenBack(_ string, kind payments.EventKind, taken, short money.Micros) {
	k := OtherLabel
	switch kind {
	case payments.Refunded:
		k = "refund"
	case payments.Disputed:
		k = "dispute"
	}
	m.pay.reversals.WithLabelValues(k).Inc()
	if taken > 0 {
		m.pay.takenBack.WithLabelValues(k).Add(float64(taken))
	}
	if short > 0 {
		m.pay.takenBackShort.WithLabelValues(k).Add(float64(short))
	}
}

// RechargeDone implements recharge.Observer.
func (m *Metrics) RechargeDone(r recharge.Report) {
	m.pay.recharges.WithLabelValues(bounded(r.Charger, chargers), bounded(string(r.Result), rechargeResults)).Inc()
	if r.Credited && r.Amount > 0 {
		m.pay.credited.WithLabelValues(billing.SourceAutoRecharge).Add(float64(r.Amount))
	}
}

// NoticeDropped implements recharge.NoticeObserver.
func (m *Metrics) NoticeDropped(noticeType string) {
	m.pay.noticesDropped.WithLabelValues(bounded(noticeType, webhookEvents)).Inc()
}

// WebhookObserver is the notify.Observer of one of creditgate's webhooks
// (WebhookCharger, WebhookNotices): it counts attempts and deliveries.
func (m *Metrics) WebhookObserver(webhook string) *notify.Observer {
	name := bounded(webhook, webhookNames)
	return &notify.Observer{
		Attempt: func(a notify.Attempt) {
			m.pay.webhookAttempts.WithLabelValues(name, bounded(a.Outcome, webhookOutcomes)).Inc()
		},
		Done: func(d notify.Delivery) {
			m.pay.webhookDelivered.WithLabelValues(name, bounded(d.Event, webhookEvents), bounded(d.Outcome, webhookOutcomes)).Inc()
			m.pay.webhookDuration.WithLabelValues(name).Observe(d.Duration.Seconds())
		},
	}
}
