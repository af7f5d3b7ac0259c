package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Money the operator moved through the admin API (and the CLI, its client):
// top-ups and adjustments. Metrics implements admin.Observer.

var _ admin.Observer = (*Metrics)(nil)

// The label values of the admin API's money; anything else is OtherLabel.
var (
	topUpSources         = []string{billing.SourcePurchase, billing.SourcePromo}
	adjustmentDirections = []string{"credit", "debit"}
)

// adminMetrics are the collectors of the admin API's money.
type adminMetrics struct {
	topUps        *prometheus.CounterVec
	topUpAmount   *prometheus.CounterVec
	adjustments   *prometheus.CounterVec
	adjustedTotal *prometheus.CounterVec
}

func newAdminMetrics(counter func(name, help string, labels ...string) *prometheus.CounterVec) *adminMetrics {
	a := &adminMetrics{
		topUps: counter("topups_total",
			"Top-ups booked through the admin API (POST …/credits, the CLI's credits add, the dashboard), by source: purchase, or promo (one with its own expires_at). Replays of an Idempotency-Key are not counted.",
			"source"),
		topUpAmount: counter("topup_micro_usd_total",
			"Credit added by admin API top-ups, in micro-USD, by source.",
			"source"),
		adjustments: counter("adjustments_total",
			"Adjustments booked through the admin API, by direction: credit (a positive amount) or debit (credit taken back). Replays are not counted.",
			"direction"),
		adjustedTotal: counter("adjusted_micro_usd_total",
			"The size of admin API adjustments, in micro-USD, by direction.",
			"direction"),
	}
	for _, s := range topUpSources {
		a.topUps.WithLabelValues(s)
		a.topUpAmount.WithLabelValues(s)
	}
	for _, d := range adjustmentDirections {
		a.adjustments.WithLabelValues(d)
		a.adjustedTotal.WithLabelValues(d)
	}
	return a
}

func (a *adminMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{a.topUps, a.topUpAmount, a.adjustments, a.adjustedTotal}
}

// ToppedUp implements admin.Observer.
func (m *Metrics) ToppedUp(source string, amount money.Micros) {
	s := bounded(source, topUpSources)
	m.admin.topUps.WithLabelValues(s).Inc()
	if amount > 0 {
		m.admin.topUpAmount.WithLabelValues(s).Add(float64(amount))
	}
}

// Adjusted implements admin.Observer.
func (m *Metrics) Adjusted(amount money.Micros) {
	d := "credit"
	if amount < 0 {
		d, amount = "debit", -amount
	}
	m.admin.adjustments.WithLabelValues(d).Inc()
	m.admin.adjustedTotal.WithLabelValues(d).Add(float64(amount))
}
