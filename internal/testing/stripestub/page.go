package stripestub

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
)

// The hosted checkout page at a session's url, for browser tests that follow
// Stripe's redirect: it shows the amount, "Pay" completes the session (Pay{}) and
// "Pay by bank" completes it pending (Pay{Async: true}), then both redirect to
// success_url; "Cancel" goes to cancel_url. The events are delivered before the
// redirect; real Stripe may redirect first.

var pageTemplate = template.Must(template.New("pay").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stripestub checkout</title></head>
<body>
<h1>stripestub checkout</h1>
<p id="amount">{{.Amount}}</p>
<form method="post"><button id="pay" name="how" value="card" type="submit">Pay</button>
<button id="pay-async" name="how" value="bank" type="submit">Pay by bank</button></form>
{{if .Cancel}}<p><a id="cancel" href="{{.Cancel}}">Cancel</a></p>{{end}}
</body></html>`))

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/pay/")
	cs, found := s.CheckoutSession(id)
	if !found {
		http.Error(w, "no such checkout session", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action *")
	switch r.Method {
	case http.MethodGet:
		if cs.Status != "open" {
			http.Error(w, "this checkout session is "+cs.Status, http.StatusGone)
			return
		}
		cancel := ""
		if cs.CancelURL != nil {
			cancel = *cs.CancelURL
		}
		_ = pageTemplate.Execute(w, struct{ Amount, Cancel string }{
			fmt.Sprintf("%d.%02d %s", cs.AmountTotal/100, cs.AmountTotal%100, strings.ToUpper(cs.Currency)), cancel})
	case http.MethodPost:
		if _, err := s.CompleteCheckout(id, Pay{Async: r.FormValue("how") == "bank"}); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		http.Redirect(w, r, strings.ReplaceAll(cs.SuccessURL, "{CHECKOUT_SESSION_ID}", id), http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
