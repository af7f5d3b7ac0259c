package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
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

// RequestIDHeader carries creditgate's request id (also the ledger's request_id).
const RequestIDHeader = "X-Creditgate-Request-Id"

// apiError is an error answered to an app in OpenAI's shape.
type apiError struct {
	status  int
	message string
	typ     string
	param   string // "" → null
	code    string // "" → null
}

func (e *apiError) Error() string { return e.message }

// Error types and the errors the proxy answers.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"
)

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

// writeError answers e in OpenAI's error shape (indented like OpenAI's).
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
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(b.String()))
}

// writeQuotaExceeded answers the 429 for an empty or expired balance. Like OpenAI,
// no Retry-After: waiting does not help, buying credit does.
func writeQuotaExceeded(w http.ResponseWriter, reason string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(QuotaExceededBody)))
	h.Set(ReasonHeader, reason)
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(QuotaExceededBody))
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
