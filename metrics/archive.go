package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The ledger archive's shipping (pgarchive.Shipper): how far behind the
// archive is, what it shipped and how often shipping failed.

// ArchiveMetrics are the ledger archive's collectors; it implements
// pgarchive.Observer.
type ArchiveMetrics struct {
	lag    prometheus.Gauge
	events prometheus.Counter
	errors prometheus.Counter
}

func newArchiveMetrics() *ArchiveMetrics {
	return &ArchiveMetrics{
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "ledger_archive_lag_seconds",
			Help: "After each shipping round: the age of the oldest ledger event the round found not yet in the PostgreSQL archive (0: every account was caught up). Each instance reports its own rounds; take the max."}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "ledger_archive_events_total",
			Help: "Ledger events this instance shipped to the PostgreSQL archive (each event is archived once, by whichever instance ships it; sum over instances)."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "ledger_archive_errors_total",
			Help: "Failed shipping steps (a batch, a trim, a round's account listing): the next round retries; rising steadily means the archive or Redis is unreachable and Redis is not being trimmed."}),
	}
}

func (a *ArchiveMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{a.lag, a.events, a.errors}
}

// Shipped counts events newly archived.
func (a *ArchiveMetrics) Shipped(events int) { a.events.Add(float64(events)) }

// ShipFailed counts a failed shipping step.
func (a *ArchiveMetrics) ShipFailed() { a.errors.Inc() }

// Lag sets the archive's lag after a round.
func (a *ArchiveMetrics) Lag(d time.Duration) { a.lag.Set(d.Seconds()) }

// Archive is the ledger archive's metrics, for the shipper.
func (m *Metrics) Archive() *ArchiveMetrics { return m.archive }
