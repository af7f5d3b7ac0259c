package proxy

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// exchange is the state of one metered request, from admission to settlement.
type exchange struct {
	id       string
	start    time.Time
	endpoint metering.Endpoint
	settings *Settings

	// The app's request and its writer, as admission reads them; admission replaces
	// in's body with the one to forward.
	in *http.Request
	w  http.ResponseWriter

	// Filled by admission (admit's rules, in order).
	key       billing.APIKey
	body      []byte // the body as the app sent it
	req       *metering.Request
	model     string // the priced model name the request is billed as
	price     metering.Price
	input     metering.Tokens // local count of the prompt, or its byte bound (prompt.exact false)
	prompt    promptCount
	meter     *metering.ResponseMeter
	estimate  money.Micros
	held      money.Micros
	clampedTo int64 // the output cap the proxy set, 0 if untouched

	// Filled while forwarding.
	ctx            context.Context // the exchange's, bounded by upstream.timeout
	forwardAt      time.Time
	responseAt     time.Time
	upstreamStatus int // 0: no answer
	upstreamErr    error
	limit          metering.Limit // what the response may carry and cost, whatever the upstream does
	bill           metering.Bill  // what it was billed, and what its upstream claimed beyond that
	upstream       upstreamBody   // the upstream's 2xx body (part of the exchange, as rec is)
	plain          *teeBody       // &plainBody for a plain 2xx answer, else nil
	background     *billing.Batch // a background response recorded as open: billed by the poller (background.go)
	backgroundLost bool           // a background response the store did not record: cancelled, answered 503
	plainBody      teeBody        // part of the exchange, as rec is: one allocation less
	forward        forwardBody
	rec            recorder // what the app was sent (part of the exchange: one allocation less)

	// The request's in-flight record (Options.InFlight): open, and when its
	// output count was last offered to the log.
	inflight   bool
	progressAt time.Time
}

// path is the request path, e.g. "/v1/chat/completions".
func (x *exchange) path() string { return x.in.URL.Path }

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// serveMetered handles a metered POST from authentication to the log line.
func (p *Proxy) serveMetered(w http.ResponseWriter, r *http.Request, ep metering.Endpoint) {
	x := &exchange{id: billing.NewID("req_"), start: p.opts.Now(), endpoint: ep, settings: p.opts.Settings(), in: r, w: w}
	w.Header().Set(RequestIDHeader, x.id)
	if aerr := p.admit(x); aerr != nil {
		writeError(w, aerr)
		p.logRejected(x, aerr)
		p.opts.Observer.RequestDone(Report{Endpoint: x.path(), Model: x.model, Stream: x.req != nil && x.req.Stream,
			Status: aerr.status, Reason: quotaReason(aerr), RateLimited: aerr.rateLimited, Latency: p.opts.Now().Sub(x.start)})
		return
	}
	p.opts.Observer.HoldOpened()

	x.rec = recorder{ResponseWriter: w, now: p.opts.Now}
	p.beginInFlight(x, 0)
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.Timeout)
	defer cancel()
	x.ctx = ctx
	r = r.WithContext(context.WithValue(ctx, exchangeKey{}, x))
	defer func() {
		// ReverseProxy aborts with panic(http.ErrAbortHandler) when a copy fails
		// mid-body (the app or the upstream went away). Settle first, then let the
		// server see the panic and drop the connection.
		v := recover()
		p.finish(r.Context(), x)
		p.endInFlight(x)
		p.opts.Observer.HoldClosed()
		if v != nil {
			panic(v)
		}
	}()
	x.forwardAt = p.opts.Now()
	p.rp.ServeHTTP(&x.rec, r)
}

// modifyResponse wraps a 2xx body with the meter, under the request's limit (the
// output cap it was sent, the most it may cost): a stream is cut at the cap. A body
// that is not the endpoint's becomes the 502 (upstreambody.go). Error statuses pass
// through untouched (the hold is released in finish).
func (p *Proxy) modifyResponse(res *http.Response) error {
	for _, name := range dropResponseHeaders {
		res.Header.Del(name)
	}
	for name := range res.Header {
		if isUpstreamRateHeader(name) {
			delete(res.Header, name)
		}
	}
	x := exchangeFrom(res.Request.Context())
	if x == nil { // unmetered pass-through
		return nil
	}
	x.responseAt = p.opts.Now()
	x.upstreamStatus = res.StatusCode
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil
	}
	x.limit = x.req.Limit(x.price, x.input, x.clampedTo, x.held)
	x.meter.SetLimit(x.limit)
	// From here the app may get output: the record says a response is being
	// relayed, so a crash bills the prompt at least.
	p.progressInFlight(x, true)
	x.rec.onWrite = func() { p.progressInFlight(x, false) }
	x.upstream.rc = p.storedObjectBody(x, res.Body) // record what the upstream stores (stored.go)
	// Speech audio: relayed as it comes, never read, billed by the request alone.
	if x.req.RawBody() {
		x.upstream.checked = true
		res.Body = &x.upstream
		return nil
	}
	if isEventStream(res.Header.Get("Content-Type")) {
		x.upstream.stream = true
		res.Body = metering.NewStreamFilter(&x.upstream, x.meter)
		// Dropping the hidden usage event, or cutting the stream, changes the length.
		res.ContentLength = -1
		res.Header.Del("Content-Length")
		return nil
	}
	ok, err := x.upstream.checkPlain(res.Header.Get("Content-Type"))
	switch {
	case err != nil:
		return err // nothing to relay: answered as a failed exchange, the hold released
	case !ok:
		x.upstream.invalid = true
		invalidAnswer(res)
		return nil
	}
	x.plainBody = teeBody{rc: &x.upstream}
	if x.req.CountsImages() {
		x.plainBody.images = &metering.ImageCounter{} // a body past maxPlainBody is billed by this count
	}
	if res.ContentLength > 0 && res.ContentLength <= maxPlainBody {
		x.plainBody.buf = make([]byte, 0, res.ContentLength) // the copy in one allocation
	}
	x.plain = &x.plainBody
	res.Body = x.plain
	if x.req.Background {
		return p.openBackground(x, res) // background.go
	}
	return nil
}

func isEventStream(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// quotaReason is a refusal's Report.Reason: a quota 429's reason, not a rate
// limit's (reported as RateLimited).
func quotaReason(e *apiError) string {
	if e.rateLimited != "" {
		return ""
	}
	return e.reason
}
