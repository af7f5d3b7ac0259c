package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/creditgate/creditgate/billing"
)

// apiError is an error answer: {"error":{"message","code"}}. Messages are for
// the customer and name no internals.
type apiError struct {
	status  int
	code    string
	message string
	// field names the form field a refusal is about ("amount"), for the page.
	field string
}

func (e *apiError) Error() string { return e.message }

var (
	errNoSession   = &apiError{status: http.StatusUnauthorized, code: "session_required", message: "Your billing session has ended. Open the Billing page again from a new link."}
	errCSRF        = &apiError{status: http.StatusForbidden, code: "csrf_failed", message: "This form is out of date or did not come from the Billing page. Reload the page and try again."}
	errNotFound    = &apiError{status: http.StatusNotFound, code: "not_found", message: "Not found."}
	errUnavailable = &apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "The billing service is unavailable. Try again in a minute."}
	errNoPayments  = &apiError{status: http.StatusConflict, code: "payments_disabled", message: "Buying credit is not available here. Contact the provider of this service."}
)

func badRequest(code, field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, field: field, message: fmt.Sprintf(format, args...)}
}

// storeError maps a store error to an answer. Not-found is the same 404 as a
// route that does not exist, so another account's ids reveal nothing.
func storeError(err error) *apiError {
	var limit *billing.LimitError
	switch {
	case errors.As(err, &limit):
		return &apiError{status: http.StatusBadRequest, code: limitCode(limit.Err), field: "amount", message: limitMessage(limit)}
	case errors.Is(err, billing.ErrAccountNotFound), errors.Is(err, billing.ErrPurchaseNotFound), errors.Is(err, billing.ErrPaymentNotFound):
		return errNotFound
	case errors.Is(err, billing.ErrInvalid):
		return &apiError{status: http.StatusBadRequest, code: "invalid", message: capitalize(strings.TrimPrefix(err.Error(), billing.ErrInvalid.Error()+": ")) + "."}
	}
	return errUnavailable
}

// limitMessage says which rule a purchase breaks, in dollars and cents.
func limitMessage(e *billing.LimitError) string {
	switch e.Err {
	case billing.ErrBelowMinimum:
		return fmt.Sprintf("%s is below the minimum purchase of %s.", usd(e.Amount), usd(e.Limit))
	case billing.ErrAboveMaxTopUp:
		return fmt.Sprintf("%s is above your tier's maximum purchase of %s.", usd(e.Amount), usd(e.Limit))
	case billing.ErrAboveMaxBalance:
		return fmt.Sprintf("Your credit after this purchase would be %s, above your tier's maximum balance of %s.", usd(e.Amount), usd(e.Limit))
	}
	return capitalize(e.Error()) + "."
}

func limitCode(err error) string {
	switch err {
	case billing.ErrBelowMinimum:
		return "below_minimum"
	case billing.ErrAboveMaxTopUp:
		return "above_max_topup"
	case billing.ErrAboveMaxBalance:
		return "above_max_balance"
	}
	return "limit"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Code    string `json:"code"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	var b errorBody
	b.Error.Message, b.Error.Code, b.Error.Field = e.message, e.code, e.field
	writeJSON(w, e.status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// wantsJSON: the page's script asks for JSON; a form posted without script
// gets a page or a redirect.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}
