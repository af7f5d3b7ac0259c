package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/creditgate/creditgate/billing"
)

// Error types (ErrorDetail.Type), one per status family.
const (
	TypeInvalidRequest = "invalid_request_error" // 400, 405, 413
	TypeAuthentication = "authentication_error"  // 401
	TypePermission     = "permission_error"      // 403
	TypeNotFound       = "not_found_error"       // 404
	TypeConflict       = "conflict_error"        // 409
	TypeUnavailable    = "service_unavailable"   // 503
	TypeServer         = "server_error"          // 500
)

// Error codes (ErrorDetail.Code).
const (
	CodeInvalidJSON         = "invalid_json"           // the body is not one JSON object
	CodeUnknownField        = "unknown_field"          // the body has a field the endpoint does not take
	CodeMissingField        = "missing_field"          // a required field is absent
	CodeInvalidValue        = "invalid_value"          // a field or parameter has the wrong type or value
	CodeInvalidAmount       = "invalid_amount"         // a money amount does not parse or is out of range
	CodeUnknownTier         = "unknown_tier"           // the tier is not in the policy
	CodeBelowMinimum        = "below_minimum_purchase" // top-up below Policy.MinPurchase
	CodeAboveMaxTopUp       = "above_max_topup"        // top-up above the tier's maximum
	CodeAboveMaxBalance     = "above_max_balance"      // credit would exceed the tier's maximum
	CodeInsufficientCredit  = "insufficient_credit"    // a negative adjustment above credit − reserved
	CodeInvalidRequest      = "invalid_request"        // the store rejected the request (billing.ErrInvalid)
	CodeInvalidAdminToken   = "invalid_admin_token"    // missing or wrong bearer token
	CodeInsufficientScope   = "insufficient_scope"     // the token lacks the scope of the route
	CodeAccountNotFound     = "account_not_found"
	CodeKeyNotFound         = "key_not_found"
	CodeUnknownRoute        = "unknown_route"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeAccountExists       = "account_exists"
	CodeIdempotencyConflict = "idempotency_key_reused" // same Idempotency-Key, different body
	CodeRequestTooLarge     = "request_too_large"      // body over 1 MiB
	CodeRequestCanceled     = "request_canceled"       // the client went away
	CodeStoreUnavailable    = "store_unavailable"      // billing.ErrUnavailable
	CodeNotDurable          = "not_durable"            // billing.ErrNotDurable: made on the master, not confirmed by replicas
	CodeInternal            = "internal_error"
)

// statusClientClosedRequest is nginx's status for a client that hung up; nobody
// reads the answer, but the access log shows what happened.
const statusClientClosedRequest = 499

// apiError is an error answer: what the client sees plus the cause, which is
// logged for server-side failures and never sent.
type apiError struct {
	status  int
	typ     string
	code    string
	message string
	param   string
	cause   error
	// problems are every field at fault, when there are several.
	problems []FieldError
}

func (e *apiError) body() ErrorResponse {
	return ErrorResponse{Error: ErrorDetail{Message: e.message, Type: e.typ, Code: e.code, Param: e.param, Problems: e.problems}}
}

func badRequest(code, param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: TypeInvalidRequest, code: code, param: param, message: fmt.Sprintf(format, args...)}
}

func missingField(param string) *apiError {
	return badRequest(CodeMissingField, param, "%s is required", param)
}

func invalidAmount(param string, err error) *apiError {
	// money's messages start with "invalid amount": say which field it was.
	return badRequest(CodeInvalidAmount, param, "%s: %v", param, err)
}

func notFound(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, typ: TypeNotFound, code: code, message: fmt.Sprintf(format, args...)}
}

func internalError(cause error) *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: TypeServer, code: CodeInternal,
		message: "internal error; the server log has the details", cause: cause}
}

// storeError maps an error of billing.Ledger or billing.KeyStore to an answer. The
// domain errors' messages are written for callers; anything else is the server's
// problem and its detail stays in the log.
func storeError(err error) *apiError {
	var (
		limit        *billing.LimitError
		insufficient *billing.InsufficientCreditError
	)
	switch {
	case errors.As(err, &insufficient):
		return badRequest(CodeInsufficientCredit, "amount", "%s", insufficient.Error())
	case errors.Is(err, billing.ErrInsufficientCredit):
		return badRequest(CodeInsufficientCredit, "amount", "%v", err)
	case errors.As(err, &limit):
		return limitError(limit.Err, limit.Error())
	case errors.Is(err, billing.ErrBelowMinimum), errors.Is(err, billing.ErrAboveMaxTopUp), errors.Is(err, billing.ErrAboveMaxBalance):
		return limitError(err, err.Error())
	case errors.Is(err, billing.ErrAccountNotFound):
		return notFound(CodeAccountNotFound, "%v", err)
	case errors.Is(err, billing.ErrKeyNotFound):
		return notFound(CodeKeyNotFound, "%v", err)
	case errors.Is(err, billing.ErrAccountExists):
		return &apiError{status: http.StatusConflict, typ: TypeConflict, code: CodeAccountExists, param: "id", message: err.Error()}
	case errors.Is(err, billing.ErrIdempotencyConflict):
		return &apiError{status: http.StatusConflict, typ: TypeConflict, code: CodeIdempotencyConflict,
			message: "this Idempotency-Key was already used with a different request body; use a new key for a new request"}
	case errors.Is(err, billing.ErrUnknownTier):
		return badRequest(CodeUnknownTier, "tier", "%v", err)
	case errors.Is(err, billing.ErrInvalid):
		return badRequest(CodeInvalidRequest, "", "%s", strings.TrimPrefix(err.Error(), billing.ErrInvalid.Error()+": "))
	case errors.Is(err, billing.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, typ: TypeUnavailable, code: CodeStoreUnavailable,
			message: "the billing store is unavailable; try again", cause: err}
	case errors.Is(err, context.Canceled):
		return &apiError{status: statusClientClosedRequest, typ: TypeInvalidRequest, code: CodeRequestCanceled,
			message: "request canceled"}
	}
	return internalError(err)
}

// moneyError is storeError for a request that moves money (a top-up, an
// adjustment). Its 503 is ambiguous: the store may have applied the change
// before it failed, or applied it without enough replicas confirming it
// (billing.ErrNotDurable). A retry with a new key could then apply it twice, so
// the message says to retry with the same Idempotency-Key, which applies it at
// most once; hasKey says whether the request carried one.
func moneyError(err error, hasKey bool) *apiError {
	e := storeError(err)
	if e.status != http.StatusServiceUnavailable {
		return e
	}
	switch {
	case errors.Is(err, billing.ErrNotDurable):
		e.code = CodeNotDurable
		e.message = "the change was made on the Redis master but not confirmed by enough replicas in time, so a failover could still lose it; " +
			"retry with the same Idempotency-Key: the retry applies it once, or confirms it"
	default:
		e.message = "the billing store is unavailable, and the change may or may not have been applied; " +
			"retry with the same Idempotency-Key: the retry applies it at most once"
	}
	if !hasKey {
		e.message += " (this request had none, so a retry is a new request: check the ledger first, and send an Idempotency-Key)"
	}
	return e
}

func limitError(sentinel error, message string) *apiError {
	code := CodeBelowMinimum
	switch {
	case errors.Is(sentinel, billing.ErrAboveMaxTopUp):
		code = CodeAboveMaxTopUp
	case errors.Is(sentinel, billing.ErrAboveMaxBalance):
		code = CodeAboveMaxBalance
	}
	return badRequest(code, "amount", "%s", message)
}

// decodeBody reads the request body, one JSON object, into dst. Unknown fields,
// wrong types and trailing data are rejected with the field named. An empty body
// is an empty object when emptyOK, an error otherwise.
func decodeBody(r *http.Request, dst any, emptyOK bool) *apiError {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		// Exactly one value: "{...} {...}" or "{...} x" is a malformed request.
		if _, err = dec.Token(); err == io.EOF {
			return nil
		}
		if err == nil {
			return badRequest(CodeInvalidJSON, "", "the request body must hold a single JSON object")
		}
	}
	if err == io.EOF && emptyOK {
		return nil
	}
	return decodeError(err)
}

func decodeError(err error) *apiError {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return &apiError{status: http.StatusRequestEntityTooLarge, typ: TypeInvalidRequest, code: CodeRequestTooLarge,
			message: fmt.Sprintf("the request body is larger than %d bytes", tooLarge.Limit)}
	case err == io.EOF:
		return badRequest(CodeInvalidJSON, "", "the request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(CodeInvalidJSON, "", "the request body is truncated JSON")
	case errors.As(err, &syntax):
		return badRequest(CodeInvalidJSON, "", "the request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typeError):
		if typeError.Field == "" {
			return badRequest(CodeInvalidJSON, "", "the request body must be a JSON object, not a JSON %s", typeError.Value)
		}
		return badRequest(CodeInvalidValue, typeError.Field, "%s must be %s, not a JSON %s", typeError.Field, describeKind(typeError.Type), typeError.Value)
	}
	// encoding/json reports unknown fields only as text: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(name, `"`)
		return badRequest(CodeUnknownField, field, "unknown field %s in the request body", name)
	}
	return badRequest(CodeInvalidJSON, "", "the request body could not be read: %v", err)
}

func describeKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice:
		return "an array"
	}
	return "a " + t.String()
}
