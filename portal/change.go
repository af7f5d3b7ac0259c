package portal

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

// The forms: "Add to credit balance" (POST purchases) and the auto-recharge
// settings (POST auto-recharge). Both take form fields, from the page's script
// (which asks for JSON and shows the server's message in place) or from the
// form itself when script is off (a redirect, or a page with the message).

// formAmount reads a dollar amount field: "25", "25.5", "25.50".
func formAmount(r *http.Request, field, label string) (money.Micros, *apiError) {
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue(field)), "$"))
	if v == "" {
		return 0, badRequest("invalid_amount", field, "Enter %s in dollars, like 25 or 25.50.", label)
	}
	m, err := money.Parse(v)
	if err != nil {
		return 0, badRequest("invalid_amount", field, "Enter %s in dollars, like 25 or 25.50 (not %q).", label, v)
	}
	if m%10_000 != 0 {
		return 0, badRequest("invalid_amount", field, "Enter %s in whole cents, like 25.50.", label)
	}
	return m, nil
}

func formBool(r *http.Request, field string) bool {
	switch r.PostFormValue(field) {
	case "on", "true", "1", "yes":
		return true
	}
	return false
}

// baseURL is where the browser reaches this server: portal.public_url, or the
// request's own host.
func (h *Handler) baseURL(r *http.Request) string {
	if h.PublicURL != nil {
		return strings.TrimSuffix(h.PublicURL.String(), "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// startPurchase starts a purchase of the form's amount and sends the browser to
// the provider's checkout. The server checks the amount (min_purchase, the
// tier's max_topup and max_balance) and its message is the page's.
func (h *Handler) startPurchase(w http.ResponseWriter, r *http.Request, s *session) {
	if h.Purchases == nil {
		h.refuse(w, r, errNoPayments)
		return
	}
	// A preset is the field amount; "Other" leaves it empty and fills custom_amount.
	field := "amount"
	if strings.TrimSpace(r.PostFormValue("amount")) == "" {
		field = "custom_amount"
	}
	amount, e := formAmount(r, field, "an amount")
	if e != nil {
		h.refuse(w, r, e)
		return
	}
	if amount <= 0 {
		h.refuse(w, r, badRequest("invalid_amount", field, "Enter an amount greater than zero."))
		return
	}
	id := billing.NewID("pur_")
	back := h.baseURL(r) + Path + "?purchase=" + url.QueryEscape(id)
	p, err := h.Purchases.Start(r.Context(), StartPurchase{ID: id, Account: s.Account, Amount: amount, SaveCard: formBool(r, "save_card"),
		SuccessURL: back, CancelURL: back + "&canceled=1"})
	if err != nil {
		var lim *billing.LimitError
		switch {
		case errors.As(err, &lim), errors.Is(err, billing.ErrInvalid):
			h.refuse(w, r, storeError(err))
		case errors.Is(err, payments.ErrRejected), errors.Is(err, payments.ErrInvalid):
			h.log().Warn("portal: the provider refused a checkout", zap.String("account", s.Account), zap.Error(err))
			h.refuse(w, r, &apiError{status: http.StatusBadGateway, code: "provider_refused", field: "amount",
				message: "The payment provider refused this purchase. Try another amount, or try again later."})
		default:
			h.log().Error("portal: starting a purchase", zap.String("account", s.Account), zap.Error(err))
			h.refuse(w, r, &apiError{status: http.StatusBadGateway, code: "provider_unavailable",
				message: "The checkout could not be started just now. Nothing was charged; try again in a minute."})
		}
		return
	}
	if !safeReturnURL(p.CheckoutURL) {
		h.log().Error("portal: the purchase service gave no checkout URL", zap.String("account", s.Account), zap.String("purchase", p.ID))
		h.refuse(w, r, errUnavailable)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusCreated, map[string]string{"id": p.ID, "url": p.CheckoutURL, "status": string(p.Status)})
		return
	}
	http.Redirect(w, r, p.CheckoutURL, http.StatusSeeOther)
}

// setAutoRecharge saves the auto-recharge settings, refusing what could never
// work with the rule it breaks (the same rules as the admin API).
func (h *Handler) setAutoRecharge(w http.ResponseWriter, r *http.Request, s *session) {
	ar := billing.AutoRecharge{Enabled: formBool(r, "enabled")}
	if ar.Enabled {
		for _, f := range []struct {
			dst          *money.Micros
			field, label string
		}{
			{&ar.Threshold, "threshold", "a threshold"},
			{&ar.Amount, "amount", "an amount"},
			{&ar.MonthlyLimit, "monthly_limit", "a monthly limit"},
		} {
			v, e := formAmount(r, f.field, f.label)
			if e != nil {
				h.refuse(w, r, e)
				return
			}
			*f.dst = v
		}
		p := h.policy()
		switch {
		case ar.Amount == 0:
			h.refuse(w, r, badRequest("invalid_amount", "amount", "The recharge amount must be greater than zero."))
			return
		case ar.Amount < p.AutoRechargeMin:
			h.refuse(w, r, badRequest("below_minimum", "amount", "The recharge amount %s is below the minimum of %s.", usd(ar.Amount), usd(p.AutoRechargeMin)))
			return
		case ar.Amount < p.MinPurchase:
			h.refuse(w, r, badRequest("below_minimum", "amount", "The recharge amount %s is below the minimum purchase of %s.", usd(ar.Amount), usd(p.MinPurchase)))
			return
		case ar.MonthlyLimit < ar.Amount:
			h.refuse(w, r, badRequest("invalid_amount", "monthly_limit", "The monthly limit %s is less than the recharge amount %s, so no recharge could ever happen.", usd(ar.MonthlyLimit), usd(ar.Amount)))
			return
		}
	} else {
		// Turning it off keeps the amounts, so turning it on again starts from them.
		a, err := h.Ledger.GetAccount(r.Context(), s.Account)
		if err != nil {
			h.refuseStore(w, r, s, err)
			return
		}
		ar = a.AutoRecharge
		ar.Enabled = false
	}
	if err := h.Ledger.SetAutoRecharge(r.Context(), s.Account, ar); err != nil {
		h.refuseStore(w, r, s, err)
		return
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, autoRechargeJSON{Enabled: ar.Enabled, Threshold: ar.Threshold, Amount: ar.Amount, MonthlyLimit: ar.MonthlyLimit})
		return
	}
	http.Redirect(w, r, Path, http.StatusSeeOther)
}

func (h *Handler) refuseStore(w http.ResponseWriter, r *http.Request, s *session, err error) {
	e := storeError(err)
	if e == errUnavailable {
		h.log().Error("portal: saving auto-recharge", zap.String("account", s.Account), zap.Error(err))
	}
	h.refuse(w, r, e)
}

// refuse answers a refused form: JSON for the script, a page without it.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, e *apiError) {
	if wantsJSON(r) {
		writeError(w, e)
		return
	}
	h.renderMessage(w, e.status, "Not saved", e.message, true)
}

// usd is an amount as people read it in a message: "$5.00", or every digit
// when cents would round it ("$0.004200").
func usd(m money.Micros) string {
	s := m.String()
	if m%10_000 == 0 {
		s = s[:len(s)-4]
	}
	if strings.HasPrefix(s, "-") {
		return "-$" + s[1:]
	}
	return "$" + s
}
