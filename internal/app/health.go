package app

import (
	"net/http"

	"github.com/creditgate/creditgate/admin"
)

// The probe paths the data plane answers itself (SPEC Part 2, Operations).
const (
	healthzPath = "/healthz"
	readyzPath  = "/readyz"
)

// withProbes answers GET and HEAD of /healthz and /readyz on the data plane,
// without an app key, as the admin listener does (admin.Probes), so load
// balancers and Kubernetes probe the listener apps use. Every other request,
// another method on those paths included, goes to next: the proxy answers
// what it does not serve with its OpenAI-shaped 404. Neither path is under
// /v1/ or /billing/, so nothing the proxy or the Billing page serves is hidden.
func withProbes(next http.Handler, p admin.Probes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			switch r.URL.Path {
			case healthzPath:
				w.Header().Set("Cache-Control", "no-store")
				p.Healthz(w, r)
				return
			case readyzPath:
				w.Header().Set("Cache-Control", "no-store")
				p.Readyz(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
