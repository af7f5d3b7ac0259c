package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
)

// QuotaExceededMessage is OpenAI's message for an empty or expired balance.
const QuotaExceededMessage = "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."

// QuotaExceededBody is the exact 429 body: OpenAI's, byte for byte, including its
// four-space indentation.
const QuotaExceededBody = "{\n" +
	"    \"error\": {\n" +
	"        \"message\": \"" + QuotaExceededMessage + "\",\n" +
	"        \"type\": \"insufficient_quota\",\n" +
	"        \"param\": null,\n" +
	"        \"code\": \"insufficient_quota\"\n" +
	"    }\n" +
	"}\n"

// ReasonHeader tells operators and apps why a 429 happened ("empty", "expired",
// "insufficient") without changing OpenAI's body.
const ReasonHeader = "X-Creditgate-Reason"

// ShouldRetryHeader is the header the official OpenAI SDKs read before their own
// retry rules: "false" stops them retrying at once. Every quota 429 (type
// insufficient_quota: an empty balance, a spend limit, a key limit) carries it,
// since waiting does not help there; without it the SDKs retry a 429 twice.
const ShouldRetryHeader = "x-should-retry"

// RequestIDHeader carries creditgate's request id (also the ledger's request_id).
const RequestIDHeader = "X-Creditgate-Request-Id"

// apiError is an error answered to an app in OpenAI's shape.
type apiError struct {
	status  int
	message string
	typ     string
	param   string // "" → null
	code    string // "" → null
	// reason says why a 429 insufficient_quota happened (billing.ReasonEmpty,
	// ReasonExpired, ReasonInsufficient); it goes out in ReasonHeader.
	reason string
	// retryAfter, when set, goes out as retry-after and retry-after-ms (a rate
	// limit); noRetry sends x-should-retry: false; rateLimited is a rate-limit
	// 429's type ("requests", "tokens"), for metrics.
	retryAfter  time.Duration
	noRetry     bool
	rateLimited string
}

func (e *apiError) Error() string { return e.message }

// Error types and the errors the proxy answers.
const (
	typeInvalidRequest    = "invalid_request_error"
	typeServer            = "server_error"
	typeInsufficientQuota = "insufficient_quota"
)

// errQuotaExceeded is the 429 for an empty or expired balance, or one that pays for
// less than the request may cost: OpenAI's body (QuotaExceededBody), with the reason
// in ReasonHeader.
func errQuotaExceeded(reason string) *apiError {
	return &apiError{status: http.StatusTooManyRequests, typ: typeInsufficientQuota, code: typeInsufficientQuota,
		message: QuotaExceededMessage, reason: reason}
}

func errInvalidKey() *apiError {
	return &apiError{status: http.StatusUnauthorized, typ: typeInvalidRequest, code: "invalid_api_key",
		message: "Incorrect API key provided. Use a creditgate key (sk-cg-…) in the Authorization header: Bearer <key>."}
}

func errMissingKey() *apiError {
	return &apiError{status: http.StatusUnauthorized, typ: typeInvalidRequest, code: "invalid_api_key",
		message: "You didn't provide an API key. You need to provide your creditgate API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."}
}

func errNotFound(method, path string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, code: "unknown_url",
		message: "Invalid URL (" + method + " " + path + ")"}
}

func errTooLarge(limit int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, typ: typeInvalidRequest, code: "request_too_large",
		message: "Request body too large: the limit is " + strconv.FormatInt(limit, 10) + " bytes."}
}

func errBodyTooSlow() *apiError {
	return &apiError{status: http.StatusRequestTimeout, typ: typeInvalidRequest, code: "request_timeout",
		message: "The request body arrived too slowly and was cut off. Send it at a steady rate."}
}

func errUnpriced(model string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: "model", code: "model_not_found",
		message: "The model `" + model + "` does not exist or is not available through this gateway (it has no price)."}
}

func errStoreUnavailable() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: typeServer, code: "billing_unavailable",
		message: "The billing store is unavailable, so the request was not forwarded. Please retry shortly."}
}

func errInternal() *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: typeServer,
		message: "The gateway had an internal error while processing your request."}
}

func errUpstreamUnreachable() *apiError {
	return &apiError{status: http.StatusBadGateway, typ: typeServer, code: "upstream_unreachable",
		message: "The gateway could not reach the upstream API. You were not charged."}
}

func errUpstreamTimeout() *apiError {
	return &apiError{status: http.StatusGatewayTimeout, typ: typeServer, code: "upstream_timeout",
		message: "The upstream API did not answer in time. You were not charged."}
}

// storeError maps an error of the billing store to its answer, for every store call
// the proxy makes: an unreachable store is 503 (fail closed: nothing is forwarded);
// an unknown key, or a key whose account is gone, is 401 like any unknown key;
// anything else is logged as msg with fields and answered 500.
func (p *Proxy) storeError(err error, msg string, fields ...zap.Field) *apiError {
	switch {
	case errors.Is(err, billing.ErrUnavailable):
		return errStoreUnavailable()
	case errors.Is(err, billing.ErrKeyNotFound), errors.Is(err, billing.ErrAccountNotFound):
		return errInvalidKey()
	}
	p.log.Error(msg, append(fields, zapErr(err))...)
	return errInternal()
}

// writeError answers e in OpenAI's error shape (indented like OpenAI's). Like
// OpenAI's, a quota 429 has no Retry-After: waiting does not help, buying credit
// does; a rate-limit 429 has one (e.retryAfter).
func writeError(w http.ResponseWriter, e *apiError) {
	var b strings.Builder
	b.Grow(len(e.message) + 160)
	b.WriteString("{\n    \"error\": {\n        \"message\": ")
	b.WriteString(jsonString(e.message))
	b.WriteString(",\n        \"type\": ")
	b.WriteString(jsonString(e.typ))
	b.WriteString(",\n        \"param\": ")
	b.WriteString(nullable(e.param))
	b.WriteString(",\n        \"code\": ")
	b.WriteString(nullable(e.code))
	b.WriteString("\n    }\n}\n")
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	if e.reason != "" {
		h.Set(ReasonHeader, e.reason)
	}
	if e.retryAfter > 0 {
		writeRetryAfter(h, e.retryAfter)
	}
	if e.noRetry || e.typ == typeInsufficientQuota {
		h.Set(ShouldRetryHeader, "false")
	}
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(b.String()))
}

func nullable(s string) string {
	if s == "" {
		return "null"
	}
	return jsonString(s)
}

// jsonString encodes s as a JSON string without HTML escaping (as OpenAI does).
func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes (invalid UTF-8 becomes U+FFFD)
	return strings.TrimSuffix(buf.String(), "\n")
}
