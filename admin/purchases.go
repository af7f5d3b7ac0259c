package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/purchase"
	"github.com/creditgate/creditgate/money"
)

// Purchases starts and lists purchases through the payment provider
// (billing/purchase.Service implements it).
type Purchases interface {
	Start(ctx context.Context, r purchase.StartRequest) (purchase.Started, error)
	List(ctx context.Context, account string, limit int) ([]billing.Purchase, error)
}

// Error codes and types of the purchase and portal endpoints.
const (
	CodePaymentsDisabled    = "payments_disabled"            // no payments.provider: purchases are off
	CodePortalDisabled      = "portal_disabled"              // no portal store: no Billing page links
	CodeProviderRefused     = "payment_provider_refused"     // the provider refused the checkout
	CodeProviderUnavailable = "payment_provider_unavailable" // the provider did not answer

	TypeNotImplemented = "not_implemented_error"  // 501
	TypeBadGateway     = "payment_provider_error" // 502
)

// Limits of the purchase listing.
const (
	DefaultPurchaseListLimit = 100
	MaxPurchaseListLimit     = 1000
)

const (
	maxReturnURLLen  = 2048
	retryWithSameKey = "; retry with the same Idempotency-Key"
)

// CreatePurchaseRequest is the body of POST /admin/v1/accounts/{id}/purchases.
// Amount is a decimal string ("10.00"); the server also accepts a bare JSON
// number. SuccessURL and CancelURL default to the account's Billing page.
type CreatePurchaseRequest struct {
	Amount     string `json:"amount"`
	SaveCard   bool   `json:"save_card,omitempty"`
	SuccessURL string `json:"success_url,omitempty"`
	CancelURL  string `json:"cancel_url,omitempty"`
}

// Purchase is one purchase of credit through the payment provider.
type Purchase struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	// Status is pending, paid, failed, expired or refunded.
	Status   string       `json:"status"`
	Provider string       `json:"provider"`
	Amount   money.Micros `json:"amount"`
	// PaidAmount is what was paid and credited; TakenBack what refunds and
	// disputes took back of it.
	PaidAmount money.Micros `json:"paid_amount"`
	TakenBack  money.Micros `json:"taken_back"`
	SaveCard   bool         `json:"save_card"`
	// URL is the provider's checkout page, while the purchase is pending;
	// ExpiresAt is when it can no longer be paid.
	URL        string     `json:"url,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	PaymentRef string     `json:"payment_ref,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	SettledAt  *time.Time `json:"settled_at,omitempty"`
	Actor      string     `json:"actor,omitempty"`
	// Replayed is set by admin/client when the server answered 200: the
	// Idempotency-Key had started this purchase already.
	Replayed bool `json:"-"`
}

// PurchaseList is the answer of GET /admin/v1/accounts/{id}/purchases, newest first.
type PurchaseList struct {
	Object string     `json:"object"` // "list"
	Data   []Purchase `json:"data"`
}

// CreatePortalSessionRequest is the body of POST /admin/v1/accounts/{id}/portal-sessions.
// ReturnURL is where the Billing page's "Back" link goes (the operator's own app).
type CreatePortalSessionRequest struct {
	ReturnURL string `json:"return_url,omitempty"`
}

// PortalSession is a single-use link to an account's Billing page.
type PortalSession struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func purchaseFrom(p billing.Purchase) Purchase {
	out := Purchase{ID: p.ID, Account: p.Account, Status: string(p.Status), Provider: p.Provider, Amount: p.Amount,
		PaidAmount: p.PaidAmount, TakenBack: p.TakenBack, SaveCard: p.SaveCard, PaymentRef: p.PaymentRef, Reason: p.Reason,
		CreatedAt: p.CreatedAt.UTC(), Actor: p.Actor}
	if p.Status == billing.PurchasePending && p.CheckoutURL != "" {
		out.URL = p.CheckoutURL
		if !p.CheckoutExpiresAt.IsZero() {
			exp := p.CheckoutExpiresAt.UTC()
			out.ExpiresAt = &exp
		}
	}
	if !p.SettledAt.IsZero() {
		at := p.SettledAt.UTC()
		out.SettledAt = &at
	}
	return out
}

// createPurchaseBody is CreatePurchaseRequest as the server reads it.
type createPurchaseBody struct {
	Amount     json.RawMessage `json:"amount"`
	SaveCard   *bool           `json:"save_card"`
	SuccessURL *string         `json:"success_url"`
	CancelURL  *string         `json:"cancel_url"`
}

// createPurchase starts a purchase: 201 with the checkout page's URL. An
// Idempotency-Key names the purchase, so a retry gets the same checkout (200).
func (s *Server) createPurchase(w http.ResponseWriter, r *http.Request) *apiError {
	var body createPurchaseBody
	id, idemKey, hasIdemKey, e := readCreditRequest(r, &body)
	if e != nil {
		return e
	}
	amount, e := requireAmount(body.Amount, "amount", "")
	if e != nil {
		return e
	}
	if amount == 0 {
		return badRequest(CodeInvalidAmount, "amount", "amount must be greater than zero")
	}
	if amount%money.Cent != 0 {
		return badRequest(CodeInvalidAmount, "amount", "amount %s is not a whole number of cents: a payment cannot carry a fraction of a cent", amount)
	}
	req := purchase.StartRequest{Account: id, Amount: amount, Actor: actor(r)}
	if body.SaveCard != nil {
		req.SaveCard = *body.SaveCard
	}
	for _, f := range []struct {
		dst   *string
		src   *string
		param string
	}{{&req.SuccessURL, body.SuccessURL, "success_url"}, {&req.CancelURL, body.CancelURL, "cancel_url"}} {
		if f.src == nil {
			continue
		}
		if e := checkReturnURL(*f.src, f.param); e != nil {
			return e
		}
		*f.dst = *f.src
	}
	if hasIdemKey {
		req.ID = purchase.IDForKey(id, idemKey)
	}
	if s.Purchases == nil {
		return paymentsDisabled()
	}
	st, err := s.Purchases.Start(r.Context(), req)
	if err != nil {
		return purchaseError(err)
	}
	status := http.StatusCreated
	if st.Replayed {
		status = http.StatusOK
		w.Header().Set(replayedHeader, "true")
	}
	writeJSON(w, status, purchaseFrom(st.Purchase))
	return nil
}

func paymentsDisabled() *apiError {
	return &apiError{status: http.StatusNotImplemented, typ: TypeNotImplemented, code: CodePaymentsDisabled,
		message: "payments are off: set payments.provider (stripe or demo) to sell credit"}
}

// purchaseError maps Start's errors: the ledger's (limits, unknown account,
// a reused key) as storeError does, the provider's refusal as 502, and anything
// else, where the store or the provider did not answer, as 503 with the advice
// to retry with the same key (the purchase may have been recorded).
func purchaseError(err error) *apiError {
	switch {
	case errors.Is(err, purchase.ErrPaymentsOff):
		return paymentsDisabled()
	case errors.Is(err, purchase.ErrProvider):
		return &apiError{status: http.StatusBadGateway, typ: TypeBadGateway, code: CodeProviderRefused,
			message: strings.TrimPrefix(err.Error(), purchase.ErrProvider.Error()+": "), cause: err}
	case errors.Is(err, billing.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		e := storeError(err)
		e.message = "the billing store is unavailable" + retryWithSameKey
		return e
	}
	e := storeError(err)
	if e.status == http.StatusInternalServerError {
		// Not a ledger error: the payment provider did not answer.
		return &apiError{status: http.StatusServiceUnavailable, typ: TypeUnavailable, code: CodeProviderUnavailable,
			message: "the payment provider did not answer" + retryWithSameKey, cause: err}
	}
	return e
}

// checkReturnURL accepts an absolute http(s) URL a customer may be sent to.
func checkReturnURL(v, param string) *apiError {
	u, err := url.Parse(v)
	switch {
	case len(v) > maxReturnURLLen:
		return badRequest(CodeInvalidValue, param, "%s is longer than %d bytes", param, maxReturnURLLen)
	case strings.ContainsFunc(v, unicode.IsControl):
		return badRequest(CodeInvalidValue, param, "%s contains a control character", param)
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return badRequest(CodeInvalidValue, param, "%s must be an absolute http(s) URL such as \"https://app.example.com/billing/done\"", param)
	}
	return nil
}

// listPurchases answers the account's purchases, newest first (?limit=).
func (s *Server) listPurchases(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	limit, e := purchaseListQuery(r)
	if e != nil {
		return e
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	if _, err := ledger.GetAccount(r.Context(), id); err != nil {
		return storeError(err)
	}
	list := PurchaseList{Object: "list", Data: []Purchase{}}
	if s.Purchases != nil {
		ps, err := s.Purchases.List(r.Context(), id, limit)
		if err != nil {
			return storeError(err)
		}
		for _, p := range ps {
			list.Data = append(list.Data, purchaseFrom(p))
		}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func purchaseListQuery(r *http.Request) (int, *apiError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, badRequest(CodeInvalidValue, "", "the query string is malformed: %v", err)
	}
	limit := DefaultPurchaseListLimit
	for name, values := range q {
		if name != "limit" {
			return 0, badRequest(CodeInvalidValue, name, "unknown query parameter %q; this endpoint takes limit", name)
		}
		n, err := strconv.Atoi(values[0])
		if len(values) != 1 || err != nil || n < 1 || n > MaxPurchaseListLimit {
			return 0, badRequest(CodeInvalidValue, "limit", "limit must be one integer from 1 to %d", MaxPurchaseListLimit)
		}
		limit = n
	}
	return limit, nil
}
