package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// An upstream's 2xx answer is relayed only if it can be the endpoint's: an event
// stream (by Content-Type) that begins with an SSE field, or else a JSON object
// under a JSON (or plain-text, or no) Content-Type. Anything else — the HTML page
// of a captive portal or of a proxy in between, an empty body — is answered 502
// upstream_invalid_response and charged nothing. A plain body's start is read
// before anything is sent to the app; a stream's headers go out at once (a first
// token may take long), and a stream that turns out not to be SSE gets one error
// event in OpenAI's in-stream shape, which the SDKs raise, instead of its bytes.

// sniffLen bounds what is read of a body to decide whether it starts right: a JSON
// object's brace, or an SSE field's name, after a little white space.
const sniffLen = 64

// upstreamBody is the upstream's 2xx body as the proxy reads it: it checks the start
// and keeps the first read error, which tells a body the upstream cut short (or
// timed out on) from one read to its end.
type upstreamBody struct {
	rc      io.ReadCloser
	stream  bool   // an event stream: its start is checked as it is read
	head    []byte // bytes read to check the start, not yet returned
	buf     [sniffLen]byte
	checked bool
	invalid bool  // the body is not the endpoint's: nothing was relayed of it
	err     error // the first read error other than io.EOF
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if !b.checked {
		b.checked = true
		if !b.sniff(startsSSE) {
			b.invalid = true
			b.head = invalidStreamEvent // only ever read
		}
	}
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	if b.invalid {
		return 0, io.EOF
	}
	return b.read(p)
}

func (b *upstreamBody) Close() error { return b.rc.Close() }

// read reads the upstream, noting its first error.
func (b *upstreamBody) read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// sniff reads into head until starts can tell whether the body begins right (or
// sniffLen bytes, or the end, or an error) and returns its verdict. A body that
// ends or fails before it could tell is not right.
func (b *upstreamBody) sniff(starts func(head []byte, complete bool) (ok, known bool)) bool {
	b.head = b.buf[:0]
	for {
		if ok, known := starts(b.head, len(b.head) == sniffLen); known {
			return ok
		}
		n, err := b.read(b.buf[len(b.head):])
		b.head = b.buf[:len(b.head)+n]
		if err != nil {
			ok, known := starts(b.head, true)
			return ok && known
		}
	}
}

// startsJSON tells whether head (the body's first bytes) begins a JSON object;
// known is false while it needs more bytes (complete: there are no more).
func startsJSON(head []byte, complete bool) (ok, known bool) {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n")
	if len(head) == 0 {
		return false, complete
	}
	return head[0] == '{', true
}

// startsSSE tells whether head begins an event stream: its first line (after blank
// lines) is a comment or a data, event, id or retry field.
func startsSSE(head []byte, complete bool) (ok, known bool) {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, "\r\n")
	end := bytes.IndexAny(head, ":\r\n")
	if end < 0 {
		return false, complete
	}
	switch string(head[:end]) {
	case "", "data", "event", "id", "retry":
		return true, true
	}
	return false, true
}

// jsonContentType reports whether a plain answer's Content-Type may carry JSON:
// application/json or a +json type, text/plain (some compatible servers send it),
// or none.
func jsonContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case mt == "", strings.EqualFold(mt, "application/json"), strings.EqualFold(mt, "text/plain"):
		return true
	}
	return len(mt) > len("+json") && strings.EqualFold(mt[len(mt)-len("+json"):], "+json") && strings.Contains(mt, "/")
}

// checkPlain reads the start of a plain 2xx body: ok false answers 502. err is the
// read error that left nothing to check (the upstream cut or timed out before its
// body), answered as a failed exchange.
func (b *upstreamBody) checkPlain(contentType string) (ok bool, err error) {
	b.checked = true
	if !jsonContentType(contentType) {
		return false, nil
	}
	ok = b.sniff(startsJSON)
	if !ok && len(b.head) == 0 && b.err != nil {
		return false, b.err
	}
	return ok, nil
}

// fault names how the body ended when it did not end well: "upstream_timeout" (the
// exchange's deadline), "upstream_cut" (the upstream broke it off), or "" (it was
// read to its end, or the app went away first).
func (b *upstreamBody) fault(x *exchange) string {
	switch {
	case b.err == nil, x.in.Context().Err() != nil:
		return ""
	case errors.Is(x.ctx.Err(), context.DeadlineExceeded):
		return faultTimeout
	}
	return faultCut
}

// How an upstream's answer went wrong, as logged (reason).
const (
	faultCut       = "upstream_cut"              // its body broke off
	faultTimeout   = "upstream_timeout"          // its body did not finish within upstream.timeout
	faultInvalid   = "upstream_invalid_response" // its 2xx body is not the endpoint's
	faultOutputCap = "output_cap"                // it wrote past the output cap: creditgate ended the stream there
)

func errUpstreamInvalid() *apiError {
	return &apiError{status: http.StatusBadGateway, typ: typeServer, code: faultInvalid,
		message: "The upstream API answered with something that is not a valid response for this endpoint. You were not charged."}
}

// invalidStreamEvent is the error event a stream that is not SSE is replaced with.
var invalidStreamEvent = func() []byte {
	e := errUpstreamInvalid()
	return []byte(`data: {"error":{"message":` + jsonString(e.message) + `,"type":"` + e.typ + `","param":null,"code":"` + e.code + "\"}}\n\n")
}()

// invalidAnswer replaces res with the 502 for a body that is not the endpoint's.
func invalidAnswer(res *http.Response) {
	res.Body.Close()
	answerWith(res, errUpstreamInvalid())
}

// answerWith replaces res (its body closed or read) with the error answer e.
func answerWith(res *http.Response, e *apiError) {
	var w bodyWriter
	writeError(&w, e)
	res.StatusCode, res.Status = w.status, strconv.Itoa(w.status)+" "+http.StatusText(w.status)
	res.Header = w.header
	res.Body = io.NopCloser(bytes.NewReader(w.body.Bytes()))
	res.ContentLength = int64(w.body.Len())
	res.Trailer = nil
}

// bodyWriter is an http.ResponseWriter that keeps what is written, to turn an
// error answer into a response.
type bodyWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bodyWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}
func (w *bodyWriter) WriteHeader(status int)      { w.status = status }
func (w *bodyWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
