package proxy

import "net/http"

// compatPaths are the OpenAI-compatible billing endpoints that chat front ends query
// with the app key.
var compatPaths = map[string]bool{
	"/dashboard/billing/credit_grants":    true,
	"/v1/dashboard/billing/credit_grants": true,
	"/dashboard/billing/subscription":     true,
	"/v1/dashboard/billing/subscription":  true,
	"/dashboard/billing/usage":            true,
	"/v1/dashboard/billing/usage":         true,
}

// serveBillingCompat answers the OpenAI-compatible billing endpoints.
func (p *Proxy) serveBillingCompat(w http.ResponseWriter, r *http.Request) {
	writeError(w, errNotFound(r.Method, r.URL.Path))
}
