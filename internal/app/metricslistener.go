package app

import (
	"fmt"
	"net"
	"net/http"

	"github.com/creditgate/creditgate/internal/stdlog"
)

// metricsMaxConnections caps the metrics listener's connections: a few
// Prometheus servers scrape it, each on one keep-alive connection. Its
// descriptors are set aside with the admin listener's.
const metricsMaxConnections = 16

// metricsBudget is the descriptors metrics.listen sets aside ("" sets none).
func metricsBudget(listen string) int {
	if listen == "" {
		return 0
	}
	return metricsMaxConnections
}

// newMetricsServer builds the metrics listener of metrics.listen: GET (and
// HEAD) /metrics, and a plain 404 for anything else, since the listener may be
// reachable from wherever Prometheus runs. It is nil when metrics.listen is "".
func (a *App) newMetricsServer(listen string) (*http.Server, *limitListener, error) {
	if listen == "" {
		return nil, nil, nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	lim := a.cfg.Limits
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: lim.HeaderTimeout, IdleTimeout: lim.IdleTimeout,
		ErrorLog: stdlog.New(a.log.Named("http"))}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics.listen: %w", err)
	}
	return srv, newLimitListener(ln, "metrics.listen", metricsMaxConnections, a.log), nil
}
