package metrics_test

import (
	"testing"
	"time"
)

// The shipper's reports land in the archive's three series.
func TestArchiveMetrics(t *testing.T) {
	m := newMetrics(t, nil)
	a := m.Archive()
	a.Shipped(3)
	a.Shipped(4)
	a.ShipFailed()
	a.Lag(1500 * time.Millisecond)
	value := func(name string) float64 {
		t.Helper()
		families, err := m.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == name {
				mt := f.GetMetric()[0]
				if c := mt.GetCounter(); c != nil {
					return c.GetValue()
				}
				return mt.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}
	cases := []struct {
		name string
		want float64
	}{
		{"creditgate_ledger_archive_events_total", 7},
		{"creditgate_ledger_archive_errors_total", 1},
		{"creditgate_ledger_archive_lag_seconds", 1.5},
	}
	for _, c := range cases {
		if got := value(c.name); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	a.Lag(0)
	if got := value("creditgate_ledger_archive_lag_seconds"); got != 0 {
		t.Errorf("lag after catching up = %v", got)
	}
}
