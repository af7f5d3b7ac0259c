package mockupstream

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// exchange is one request being answered: the response writer, the behaviour in force
// and the stream state that the fault injections look at.
type exchange struct {
	w    http.ResponseWriter
	r    *http.Request
	body []byte
	rec  *record
	b    Behavior
	err  error // how the answer ended, for the record

	events int
	enc    *json.Encoder
	rc     *http.ResponseController
	cut    bool // a CutBody fault dropped the connection mid-body
}

// apiError is OpenAI's error object; empty Param and Code are sent as null.
type apiError struct {
	Message, Type, Param, Code string
}

func (e apiError) MarshalJSON() ([]byte, error) {
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	return json.Marshal(struct {
		Error body `json:"error"`
	}{body{e.Message, e.Type, orNull(e.Param), orNull(e.Code)}})
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func invalidKeyError(r *http.Request) apiError {
	// The key is never echoed, not even masked as OpenAI does: the proxy may pass this
	// body on to its client, who must not learn anything of the upstream key.
	msg := "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
	if r.Header.Get("Authorization") == "" {
		msg = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from https://platform.openai.com/account/api-keys."
	}
	return apiError{Message: msg, Type: "invalid_request_error", Code: "invalid_api_key"}
}

// statusError is the body OpenAI sends with an injected status.
func statusError(status int) apiError {
	switch status {
	case http.StatusBadRequest:
		return apiError{
			Message: "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.",
			Type:    "invalid_request_error", Param: "messages", Code: "context_length_exceeded",
		}
	case http.StatusUnauthorized:
		return apiError{Message: "Incorrect API key provided.", Type: "invalid_request_error", Code: "invalid_api_key"}
	case http.StatusForbidden:
		return apiError{Message: "Country, region, or territory not supported", Type: "request_forbidden", Code: "unsupported_country_region_territory"}
	case http.StatusNotFound:
		return apiError{Message: "The model does not exist or you do not have access to it.", Type: "invalid_request_error", Code: "model_not_found"}
	case http.StatusTooManyRequests:
		return apiError{
			Message: "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
			Type:    "requests", Code: "rate_limit_exceeded",
		}
	case http.StatusInternalServerError:
		return apiError{Message: "The server had an error while processing your request. Sorry about that!", Type: "server_error"}
	case http.StatusServiceUnavailable:
		return apiError{Message: "The engine is currently overloaded, please try again later.", Type: "server_error"}
	}
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	return apiError{Message: http.StatusText(status), Type: typ}
}

func (x *exchange) writeError(status int, e apiError) error {
	return x.writeJSON(status, e)
}

// answer writes a plain (non-streamed) success, unless a drop or stall fault is set:
// a plain answer has no events, so those strike before the headers.
func (x *exchange) answer(v any) error {
	if x.b.DropAfter > 0 {
		return x.drop()
	}
	if x.b.StallAfter > 0 {
		return x.stall()
	}
	return x.writeJSON(http.StatusOK, v)
}

func (x *exchange) writeJSON(status int, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := x.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("X-Request-Id", newID("req_"))
	x.w.WriteHeader(status)
	if status == http.StatusOK && x.b.CutBody > 0 {
		x.cutAfter(x.b.CutBody)
	}
	if _, err := x.w.Write(data); err != nil {
		return errClientGone
	}
	return nil
}

// writeHTML answers 200 with an HTML page, as a captive portal or a proxy in front
// of the API might.
func (x *exchange) writeHTML() error {
	const page = "<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head>\n" +
		"<body><h1>Checking your browser before accessing the API.</h1></body></html>\n"
	h := x.w.Header()
	h.Set("Content-Type", "text/html; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(page)))
	x.w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(x.w, page); err != nil {
		return errClientGone
	}
	return nil
}

// cutAfter makes x's writer pass the next n body bytes and then drop the
// connection (CutBody).
func (x *exchange) cutAfter(n int) {
	x.w = &cutWriter{ResponseWriter: x.w, left: n, x: x}
}

// cutWriter passes the first left bytes written through, then drops the connection.
type cutWriter struct {
	http.ResponseWriter
	left int
	x    *exchange
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.x.cut {
		return 0, errDropped
	}
	if len(p) < c.left {
		c.left -= len(p)
		return c.ResponseWriter.Write(p)
	}
	n, _ := c.ResponseWriter.Write(p[:c.left])
	c.left = 0
	_ = http.NewResponseController(c.ResponseWriter).Flush()
	c.x.cut = true
	_ = c.x.drop()
	return n, errDropped
}

// Unwrap lets http.ResponseController reach the connection (Flush, Hijack).
func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// startStream sends the headers of an SSE answer at once, as OpenAI does.
func (x *exchange) startStream() error {
	h := x.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Request-Id", newID("req_"))
	x.w.WriteHeader(http.StatusOK)
	if x.b.CutBody > 0 {
		x.cutAfter(x.b.CutBody)
	}
	x.rc = http.NewResponseController(x.w)
	x.enc = json.NewEncoder(x.w)
	if err := x.rc.Flush(); err != nil {
		return errClientGone
	}
	return nil
}

// event writes one SSE event, "event: typ" first when typ is set, and flushes it.
func (x *exchange) event(typ string, v any) error {
	if err := x.beforeEvent(); err != nil {
		return err
	}
	if typ != "" {
		io.WriteString(x.w, "event: "+typ+"\n")
	}
	io.WriteString(x.w, "data: ")
	if err := x.enc.Encode(v); err != nil { // Encode ends the line
		return errClientGone
	}
	return x.endEvent()
}

// beforeEvent applies EventDelay, DropAfter and StallAfter.
func (x *exchange) beforeEvent() error {
	if x.events > 0 {
		if err := x.sleep(x.b.EventDelay); err != nil {
			return err
		}
	}
	return x.fault()
}

// wordTemplate is the JSON of a stream event cut where its one changing string goes,
// so the events that carry one generated word each are written without encoding: the
// words need no escaping. Build it from an event whose string is wordPlaceholder.
type wordTemplate struct{ prefix, suffix []byte }

const wordPlaceholder = "\x00"

func newWordTemplate(v any) wordTemplate {
	data, _ := json.Marshal(v) // event structs always marshal
	// The last match: the word's field comes after the model name, which a client
	// could set to anything.
	i := bytes.LastIndex(data, []byte(`\u0000`))
	return wordTemplate{data[:i], data[i+len(`\u0000`):]}
}

// wordEvent is event for an event made from t with word in its string.
func (x *exchange) wordEvent(t wordTemplate, word string) error {
	if err := x.beforeEvent(); err != nil {
		return err
	}
	io.WriteString(x.w, "data: ")
	x.w.Write(t.prefix)
	io.WriteString(x.w, word)
	x.w.Write(t.suffix)
	io.WriteString(x.w, "\n")
	return x.endEvent()
}

// done writes the "data: [DONE]" that ends chat and completion streams.
func (x *exchange) done() error {
	if x.b.NoDone {
		return x.endStream()
	}
	if err := x.beforeEvent(); err != nil {
		return err
	}
	io.WriteString(x.w, "data: [DONE]\n")
	if err := x.endEvent(); err != nil {
		return err
	}
	return x.endStream()
}

func (x *exchange) endEvent() error {
	if _, err := io.WriteString(x.w, "\n"); err != nil {
		return errClientGone
	}
	if err := x.rc.Flush(); err != nil {
		return errClientGone
	}
	x.events++
	x.rec.events.Store(int64(x.events))
	return nil
}

// endStream lets a fault set at exactly the number of events sent strike at the end.
func (x *exchange) endStream() error { return x.fault() }

func (x *exchange) fault() error {
	if x.b.DropAfter > 0 && x.events >= x.b.DropAfter {
		return x.drop()
	}
	if x.b.StallAfter > 0 && x.events >= x.b.StallAfter {
		return x.stall()
	}
	return nil
}

// drop closes the connection under the response: the client sees the body (or the
// response) cut short, as when an upstream dies.
func (x *exchange) drop() error {
	conn, _, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		// HTTP/2 cannot hijack; aborting the handler resets the stream instead.
		x.err = errDropped
		panic(http.ErrAbortHandler)
	}
	conn.Close()
	return errDropped
}

// stall sends nothing more until the client goes away.
func (x *exchange) stall() error {
	<-x.r.Context().Done()
	return errClientGone
}

// sleep waits d, or less if the client goes away.
func (x *exchange) sleep(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-x.r.Context().Done():
		return errClientGone
	}
}

const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newID is prefix and 24 random characters, the look of OpenAI's ids.
func newID(prefix string) string {
	b := make([]byte, len(prefix)+24)
	copy(b, prefix)
	for i := len(prefix); i < len(b); i++ {
		b[i] = idChars[rand.IntN(len(idChars))]
	}
	return string(b)
}
