package admin

import (
	"context"
	"net/http"

	"go.uber.org/zap"
)

// Probes answers the liveness and readiness probes, GET /healthz and GET
// /readyz, without authentication. The admin listener serves them, and so does
// the data plane (internal/app), so load balancers and Kubernetes probe the
// listener apps use without reaching the admin API; both answer alike.
type Probes struct {
	// Ready reports readiness (nil error = ready), e.g. a Redis ping; it gets a
	// context bounded by readyTimeout. nil means always ready.
	Ready func(ctx context.Context) error
	// Logger gets a warning for each failed readiness check; nil discards.
	Logger *zap.Logger
}

// Healthz says the process serves: {"status":"ok"}, always 200.
func (p Probes) Healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
}

// Readyz says whether the instance can serve: 200 {"status":"ready"}, or 503
// {"status":"unavailable","reason":…} while Ready fails (or does not answer
// within readyTimeout).
func (p Probes) Readyz(w http.ResponseWriter, r *http.Request) {
	if p.Ready == nil {
		writeJSON(w, http.StatusOK, Health{Status: "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := p.Ready(ctx); err != nil {
		if p.Logger != nil {
			p.Logger.Warn("not ready", zap.Error(err))
		}
		writeJSON(w, http.StatusServiceUnavailable, Health{Status: "unavailable", Reason: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, Health{Status: "ready"})
}
