package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

// The checkout page: GET <base><purchase>?token=… shows it, POST <base><purchase>
// with the token in the form pays it.

// style is the page's only stylesheet, inline and allowed by its hash, so the CSP
// allows no other style and no script at all.
const style = `body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
.demo{background:#fff4d6;border:1px solid #e0b84a;border-radius:6px;padding:.75rem 1rem}
.amount{font-size:2.25rem;font-weight:600;margin:1rem 0}
button{font:inherit;font-weight:600;padding:.6rem 1.6rem;border:0;border-radius:6px;background:#1f5fd1;color:#fff;cursor:pointer}
.paid{color:#116329;font-weight:600}`

var styleHash = func() string {
	sum := sha256.Sum256([]byte(style))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

var page = template.Must(template.New("checkout").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Demo checkout · creditgate</title>
<style>{{.Style}}</style>
</head>
<body>
<h1>Demo checkout</h1>
<p class="demo" id="demo-notice"><strong>This is a demo: nobody is charged.</strong> No card is needed and no money moves; pressing Pay adds the credit as a real payment would.</p>
{{if .Message}}<p id="message" role="alert">{{.Message}}</p>{{end}}
{{if .Checkout}}
<p>Credit for account <strong id="account">{{.Checkout.Account}}</strong></p>
<p class="amount" id="amount">{{.Amount}}</p>
{{if .Paid}}
<p class="paid" id="paid">Paid. The credit has been added.</p>
<p><a id="continue" href="{{.Success}}">Continue</a></p>
{{else if .Open}}
{{if .Checkout.SaveCard}}<p id="save-card">The demo card •••• 4242 will be kept for auto-recharge (no real card is stored).</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="token" value="{{.Token}}">
<button type="submit" id="pay">Pay {{.Amount}}</button>
</form>
<p><a id="cancel" href="{{.Checkout.CancelURL}}">Cancel</a></p>
{{end}}
{{end}}
</body>
</html>
`))

type pageData struct {
	Style    template.CSS
	Message  string
	Checkout *payments.Checkout
	Amount   string
	Paid     bool
	Open     bool
	Success  string
	Action   string
	Token    string
}

// ServeHTTP serves the checkout page of the purchase named by the last path
// segment.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	purchase := path.Base(r.URL.Path)
	p.mu.Lock()
	co := p.checkouts[purchase]
	p.mu.Unlock()

	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if co == nil || !p.validToken(purchase, r.URL.Query().Get("token")) {
			// One answer for unknown purchases and wrong tokens: the page does not
			// tell which purchases exist.
			p.render(w, http.StatusNotFound, nil, pageData{Message: "This demo checkout link is unknown or has ended (links end when creditgate restarts)."})
			return
		}
		co.mu.Lock()
		defer co.mu.Unlock()
		if !co.paid && p.expired(co) {
			p.render(w, http.StatusGone, co, pageData{Message: "This demo checkout has expired. Start a new purchase from the Billing page."})
			return
		}
		p.render(w, http.StatusOK, co, pageData{})
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if err := r.ParseForm(); err != nil || co == nil || !p.validToken(purchase, r.PostForm.Get("token")) {
			p.render(w, http.StatusForbidden, nil, pageData{Message: "Refused: this form's token is missing or wrong."})
			return
		}
		p.pay(w, r, co)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (p *Provider) expired(co *checkout) bool { return !p.now().Before(co.session.ExpiresAt) }

// pay completes a purchase once: OnPaid, then the redirect to the success URL. A
// purchase already paid shows as paid and calls nothing.
func (p *Provider) pay(w http.ResponseWriter, r *http.Request, co *checkout) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if co.paid {
		p.render(w, http.StatusOK, co, pageData{Message: "This purchase is already paid."})
		return
	}
	if p.expired(co) {
		p.render(w, http.StatusGone, co, pageData{Message: "This demo checkout has expired. Start a new purchase from the Billing page."})
		return
	}
	if err := p.onPaid(r.Context(), p.paidEvent(co)); err != nil {
		// The cause stays in the caller's logs; the customer may simply retry.
		p.render(w, http.StatusBadGateway, co, pageData{Message: "The payment could not be recorded. Nothing was added; please press Pay again."})
		return
	}
	co.paid = true
	if co.req.SaveCard {
		p.mu.Lock()
		p.cards[co.session.CustomerID] = true
		p.mu.Unlock()
	}
	http.Redirect(w, r, successURL(co), http.StatusSeeOther)
}

func successURL(co *checkout) string {
	return strings.ReplaceAll(co.req.SuccessURL, "{CHECKOUT_SESSION_ID}", co.session.ID)
}

// render writes the page under its security headers. co may be nil.
func (p *Provider) render(w http.ResponseWriter, status int, co *checkout, d pageData) {
	d.Style = template.CSS(style)
	formTargets := "'self'"
	if co != nil {
		req := co.req
		d.Checkout, d.Paid = &req, co.paid
		d.Open = !co.paid && !p.expired(co)
		d.Amount = p.format(req.Amount)
		d.Success = successURL(co)
		d.Action = req.PurchaseID // relative to the page: <base><purchase>, without the query
		d.Token = p.token(req.PurchaseID)
		// form-action also governs the redirect after the post, so the success
		// URL's origin must be allowed.
		if u, err := url.Parse(d.Success); err == nil && u.Host != "" {
			formTargets += " " + u.Scheme + "://" + u.Host
		}
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, d); err != nil {
		http.Error(w, "the demo checkout page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+styleHash+"; form-action "+formTargets+
		"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the URL holds the token
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// format shows an amount as people read it: "$10.00" in usd, "10.00 EUR" otherwise.
func (p *Provider) format(m money.Micros) string {
	cents, _ := payments.ToMinor(m)
	s := formatCents(cents)
	if p.currency == payments.DefaultCurrency {
		return "$" + s
	}
	return s + " " + strings.ToUpper(string(p.currency))
}

func formatCents(cents int64) string {
	whole := []byte(strconv.FormatInt(cents/100, 10))
	for i := len(whole) - 3; i > 0; i -= 3 {
		whole = append(whole[:i], append([]byte(","), whole[i:]...)...)
	}
	frac := cents % 100
	return string(whole) + "." + string(rune('0'+frac/10)) + string(rune('0'+frac%10))
}
