package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// exchange is the state of one metered request, from admission to settlement.
type exchange struct {
	id        string
	start     time.Time
	key       billing.APIKey
	endpoint  metering.Endpoint
	path      string
	req       *metering.Request
	model     string // the priced model name the request is billed as
	price     metering.Price
	input     metering.Tokens // local count of the prompt
	meter     *metering.ResponseMeter
	settings  *Settings
	estimate  money.Micros
	held      money.Micros
	clampedTo int64 // the output cap the proxy set, 0 if untouched

	// Filled while forwarding.
	forwardAt      time.Time
	responseAt     time.Time
	gotResponse    bool
	upstreamStatus int
	upstreamErr    error
	streamed       bool
	plain          *teeBody
	rec            *recorder
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// serveMetered handles a metered POST from authentication to the log line.
func (p *Proxy) serveMetered(w http.ResponseWriter, r *http.Request, ep metering.Endpoint) {
	x := &exchange{id: billing.NewID("req_"), start: p.opts.Now(), endpoint: ep, path: r.URL.Path, settings: p.opts.Settings()}
	w.Header().Set(RequestIDHeader, x.id)
	if aerr := p.admit(w, r, x); aerr != nil {
		writeError(w, aerr)
		p.logRejected(x, aerr)
		p.opts.Observer.RequestDone(Report{Endpoint: x.path, Model: x.model, Stream: x.req != nil && x.req.Stream,
			Status: aerr.status, Reason: aerr.reason, Latency: p.opts.Now().Sub(x.start)})
		return
	}
	p.opts.Observer.HoldOpened()

	x.rec = &recorder{ResponseWriter: w}
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.Timeout)
	defer cancel()
	r = r.WithContext(context.WithValue(ctx, exchangeKey{}, x))
	defer func() {
		// ReverseProxy aborts with panic(http.ErrAbortHandler) when a copy fails
		// mid-body (the app or the upstream went away). Settle first, then let the
		// server see the panic and drop the connection.
		v := recover()
		p.finish(r.Context(), x)
		p.opts.Observer.HoldClosed()
		if v != nil {
			panic(v)
		}
	}()
	x.forwardAt = p.opts.Now()
	p.rp.ServeHTTP(x.rec, r)
}

// admit authenticates, parses, prices, reserves and prepares the outgoing body. It
// returns the error to answer (a 429 included), or nil when the request may go.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request, x *exchange) *apiError {
	key, hash, aerr := p.authenticate(r)
	if aerr != nil {
		return aerr
	}
	x.key = key

	body, err := readBody(w, r, p.opts.MaxBodyBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errTooLarge(p.opts.MaxBodyBytes)
		}
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, message: "Could not read the request body."}
	}
	req, err := metering.ParseRequest(x.endpoint, body) // also refuses non-UTF-8
	if err != nil {
		var re *metering.RequestError
		if errors.As(err, &re) {
			return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: re.Param, message: re.Message}
		}
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, message: err.Error()}
	}
	x.req = req
	if aerr := p.checkItems(req); aerr != nil {
		return aerr
	}
	s := x.settings
	name, price, ok := s.Pricing.Resolve(req.Model)
	if !ok {
		return errUnpriced(req.Model)
	}
	x.model, x.price = name, price
	encoding := price.Encoding
	if encoding == "" {
		encoding = metering.EncodingForModel(req.Model)
	}
	tok, err := metering.TokenizerFor(encoding)
	if err != nil {
		p.log.Error("tokenizer unavailable", zap.String("encoding", encoding), zapErr(err))
		return errInternal()
	}
	x.input = req.InputTokens(tok)
	x.meter = metering.NewResponseMeter(req, tok, x.input)

	x.estimate = req.Estimate(price, x.input)
	minimum := x.estimate
	if s.ClampMaxTokens {
		minimum = req.ClampFloor(price, x.input)
	}

	res, err := p.opts.Ledger.Reserve(r.Context(), billing.ReserveRequest{
		Account: key.Account, HoldID: x.id, Estimate: x.estimate, Minimum: minimum,
		Grace: s.Policy.Grace, TTL: s.Policy.HoldTTL,
	})
	if err != nil {
		if errors.Is(err, billing.ErrAccountNotFound) {
			p.keys.forget(hash) // the key outlived its account
		}
		return p.storeError(err, "reserve failed", zap.String("request_id", x.id))
	}
	if !res.Admitted {
		return errQuotaExceeded(res.Reason)
	}
	x.held = res.Held

	// Rewrite the body when the output cap must shrink to the hold, or when the
	// proxy needs stream usage the app did not ask for.
	if x.held < x.estimate {
		newMax, ok := req.CapFor(price, x.input, x.held)
		if !ok {
			p.release(r.Context(), x, "hold too small for one output token")
			return errQuotaExceeded(billing.ReasonInsufficient)
		}
		x.clampedTo = newMax
	}
	if body, err = req.Rewrite(body, x.clampedTo); err != nil {
		p.release(r.Context(), x, "request rewrite failed")
		p.log.Error("request rewrite failed", zap.String("request_id", x.id), zapErr(err))
		return errInternal()
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Del("Content-Length")
	return nil
}

// checkItems enforces MaxMessages and MaxMessageBytes, in OpenAI's words for an
// over-long array or string.
func (p *Proxy) checkItems(req *metering.Request) *apiError {
	if p.opts.MaxMessages > 0 && req.Items > p.opts.MaxMessages {
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: req.ItemsParam, code: "array_above_max_length",
			message: fmt.Sprintf("Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", req.ItemsParam, p.opts.MaxMessages, req.Items)}
	}
	if p.opts.MaxMessageBytes > 0 && int64(req.LargestItem) > p.opts.MaxMessageBytes {
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: req.ItemsParam, code: "string_above_max_length",
			message: fmt.Sprintf("Invalid '%s': an item is too long. Expected at most %d bytes per item, but got %d bytes instead.", req.ItemsParam, p.opts.MaxMessageBytes, req.LargestItem)}
	}
	return nil
}

// readBody reads the request body up to limit bytes (a larger body is an
// *http.MaxBytesError), in one allocation when the client sent a Content-Length.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength <= 0 {
		return io.ReadAll(rd)
	}
	buf := make([]byte, r.ContentLength+1) // +1 to see EOF without growing
	n, err := io.ReadFull(rd, buf)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return buf[:n], nil // shorter than announced: the server reports a truncated body itself
	case err != nil:
		return nil, err
	}
	// Longer than announced: read the rest through the limit.
	rest, err := io.ReadAll(rd)
	return append(buf[:n], rest...), err
}

// modifyResponse wraps a 2xx body with the meter. Error statuses pass through
// untouched (the hold is released in finish).
func (p *Proxy) modifyResponse(res *http.Response) error {
	for _, name := range dropResponseHeaders {
		res.Header.Del(name)
	}
	x := exchangeFrom(res.Request.Context())
	if x == nil { // unmetered pass-through
		return nil
	}
	x.gotResponse = true
	x.responseAt = p.opts.Now()
	x.upstreamStatus = res.StatusCode
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil
	}
	if isEventStream(res.Header.Get("Content-Type")) {
		x.streamed = true
		res.Body = metering.NewStreamFilter(res.Body, x.meter)
		// Dropping the hidden usage event changes the length.
		res.ContentLength = -1
		res.Header.Del("Content-Length")
		return nil
	}
	x.plain = &teeBody{rc: res.Body}
	res.Body = x.plain
	return nil
}

func isEventStream(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// finish settles the request (or releases its hold) and writes its log line.
//
// Billing rules: an upstream error status or no answer at all releases the hold;
// a 2xx is billed by the upstream's usage when it reported one, else by the local
// count of the prompt and of the output the proxy saw — which is what an app that
// disconnects mid-stream pays for.
func (p *Proxy) finish(ctx context.Context, x *exchange) {
	if !x.gotResponse || x.upstreamStatus < 200 || x.upstreamStatus > 299 {
		note := "upstream error"
		if x.upstreamErr != nil && errors.Is(x.upstreamErr, context.Canceled) {
			note = "client disconnected before the upstream answered"
		}
		st := p.release(ctx, x, note)
		p.done(x, metering.Result{}, 0, st)
		return
	}
	if x.plain != nil {
		x.plain.feed(x.meter)
	}
	result := x.meter.Result()
	cost := x.price.Cost(result.Tokens)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.SettleTimeout)
	defer cancel()
	note := ""
	if !result.Done {
		note = "response incomplete"
	}
	req := billing.SettleRequest{
		Account: x.key.Account, HoldID: x.id, Cost: cost, Triggers: x.settings.Triggers,
		Usage: billing.Usage{
			RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path,
			PromptTokens: result.Tokens.Input, CompletionTokens: result.Tokens.Output,
			CachedTokens: result.Tokens.CachedInput, ReasoningTokens: result.Tokens.Reasoning,
			AudioPromptTokens: result.Tokens.AudioInput, AudioCompletionTokens: result.Tokens.AudioOutput,
			LocalPromptTokens: result.Local.Input, LocalCompletionTokens: result.Local.Output,
			TokenSource: result.Source, Note: note,
		},
	}
	st, err := p.opts.Ledger.Settle(sctx, req)
	switch {
	case err == nil:
		if p.opts.OnSettled != nil {
			p.opts.OnSettled(x.key.Account, st)
		}
	case errors.Is(err, billing.ErrUnavailable):
		p.spool(x, billing.PendingSettlement{Settle: req}, err)
	default:
		p.log.Error("settle refused: usage not booked", zap.String("request_id", x.id), zap.String("account", x.key.Account),
			zap.Stringer("cost", cost), zapErr(err))
	}
	p.done(x, result, cost, st)
}

// spool hands a settlement or release the store refused to the spool. Without a
// spool, or if saving fails, the usage is lost: the hold expires after hold_ttl and
// the error line carries what an operator needs to book it by hand.
func (p *Proxy) spool(x *exchange, ps billing.PendingSettlement, cause error) {
	ps.At = p.opts.Now()
	fields := []zap.Field{zap.String("request_id", x.id), zap.String("account", x.key.Account),
		zap.Bool("release", ps.Release), zap.Stringer("cost", ps.Settle.Cost), zap.NamedError("store_error", cause)}
	if p.opts.Spool == nil {
		p.log.Error("settlement failed and there is no spool: not booked", fields...)
		return
	}
	if err := p.opts.Spool.Save(ps); err != nil {
		p.log.Error("settlement failed and could not be spooled: not booked", append(fields, zapErr(err))...)
		return
	}
	p.log.Warn("settlement spooled: the store refused it; it will be replayed", fields...)
}

// done reports a finished exchange to the observer and the log.
func (p *Proxy) done(x *exchange, res metering.Result, cost money.Micros, st billing.Settlement) {
	drift := res.Source == billing.TokenSourceUpstream && metering.DriftExceeds(res.Tokens, res.Local, x.settings.DriftTolerance)
	rep := Report{
		Endpoint: x.path, Model: x.model, Stream: x.req.Stream, Status: x.status(), Tokens: res.Tokens, TokenSource: res.Source,
		Local: res.Local, Drift: drift, Cost: cost, Clamped: x.clampedTo > 0, Forwarded: true,
		UpstreamStatus: x.upstreamStatus, Latency: p.opts.Now().Sub(x.start),
	}
	if !x.responseAt.IsZero() {
		rep.UpstreamTime = x.responseAt.Sub(x.forwardAt)
	}
	if !x.rec.firstWrite.IsZero() {
		rep.TTFT = x.rec.firstWrite.Sub(x.start)
	}
	p.opts.Observer.RequestDone(rep)
	p.logExchange(x, rep, st)
}

// status is what the app was answered; 499 when it left before any answer.
func (x *exchange) status() int {
	if x.rec.status == 0 {
		return 499
	}
	return x.rec.status
}

// release frees x's hold, with a bounded, non-cancellable context.
func (p *Proxy) release(ctx context.Context, x *exchange, note string) billing.Settlement {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.SettleTimeout)
	defer cancel()
	u := billing.Usage{RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path, Note: note}
	st, err := p.opts.Ledger.Release(sctx, x.key.Account, x.id, u)
	switch {
	case errors.Is(err, billing.ErrUnavailable):
		p.spool(x, billing.PendingSettlement{Release: true, Settle: billing.SettleRequest{Account: x.key.Account, HoldID: x.id, Usage: u}}, err)
	case err != nil:
		p.log.Error("release refused: the hold expires after hold_ttl", zap.String("request_id", x.id), zap.String("account", x.key.Account), zapErr(err))
	}
	return st
}

// logExchange writes the request's one log line. It never includes keys, prompts
// or completions.
func (p *Proxy) logExchange(x *exchange, res Report, st billing.Settlement) {
	level := zapcore.InfoLevel
	if res.Drift {
		level = zapcore.WarnLevel
	}
	ce := p.log.Check(level, "request")
	if ce == nil {
		return
	}
	// The four amounts are formatted into one string (one allocation instead of two
	// each for zap.Stringer), and the field slice is recycled: this line is written
	// for every request.
	var buf [4 * 24]byte
	b := x.estimate.AppendText(buf[:0])
	e1 := len(b)
	b = x.held.AppendText(b)
	e2 := len(b)
	b = res.Cost.AppendText(b)
	e3 := len(b)
	b = st.BalanceAfter.AppendText(b)
	amounts := string(b)
	fp := logFields.Get().(*[]zap.Field)
	fields := append((*fp)[:0],
		zap.String("request_id", x.id),
		zap.String("account", x.key.Account),
		zap.String("key_id", x.key.ID),
		zap.String("endpoint", x.path),
		zap.String("model", x.model),
		zap.String("requested_model", x.req.Model),
		zap.Bool("stream", x.req.Stream),
		zap.Int("status", res.Status),
		zap.Int("upstream_status", x.upstreamStatus),
		zap.Int64("prompt_tokens", res.Tokens.Input),
		zap.Int64("cached_tokens", res.Tokens.CachedInput),
		zap.Int64("completion_tokens", res.Tokens.Output),
		zap.Int64("reasoning_tokens", res.Tokens.Reasoning),
		zap.Int64("audio_prompt_tokens", res.Tokens.AudioInput),
		zap.Int64("audio_completion_tokens", res.Tokens.AudioOutput),
		zap.String("token_source", res.TokenSource),
		zap.Int64("local_prompt_tokens", res.Local.Input),
		zap.Int64("local_completion_tokens", res.Local.Output),
		zap.String("estimate", amounts[:e1]),
		zap.String("held", amounts[e1:e2]),
		zap.String("cost", amounts[e2:e3]),
		zap.String("balance_after", amounts[e3:]),
		zap.Duration("latency", res.Latency),
	)
	if res.TTFT > 0 {
		fields = append(fields, zap.Duration("ttft", res.TTFT))
	}
	if res.UpstreamTime > 0 {
		fields = append(fields, zap.Duration("upstream_latency", res.UpstreamTime))
	}
	if x.clampedTo > 0 {
		fields = append(fields, zap.Int64("clamped_max_tokens", x.clampedTo))
	}
	if res.Drift {
		fields = append(fields, zap.Bool("token_drift", true))
	}
	if x.upstreamErr != nil {
		fields = append(fields, zap.String("upstream_error", x.upstreamErr.Error()))
	}
	ce.Write(fields...)
	clear(fields) // drop the references before the slice goes back to the pool
	*fp = fields[:0]
	logFields.Put(fp)
}

// logFields recycles the field slices of request log lines. zap encodes the fields
// during Write and keeps none of them afterwards.
var logFields = sync.Pool{New: func() any { f := make([]zap.Field, 0, 32); return &f }}

// logRejected logs a request answered without forwarding (401, 400, 413, 429, 503):
// a 429 with its reason, anything else with its error code.
func (p *Proxy) logRejected(x *exchange, aerr *apiError) {
	fields := []zap.Field{
		zap.String("request_id", x.id),
		zap.String("account", x.key.Account),
		zap.String("key_id", x.key.ID),
		zap.String("endpoint", x.path),
		zap.Int("status", aerr.status),
		zap.Duration("latency", p.opts.Now().Sub(x.start)),
	}
	if x.req != nil {
		fields = append(fields, zap.String("model", x.model), zap.String("requested_model", x.req.Model), zap.Bool("stream", x.req.Stream),
			zap.Int64("local_prompt_tokens", x.input.Input), zap.Stringer("estimate", x.estimate))
	}
	if aerr.reason != "" {
		fields = append(fields, zap.String("reason", aerr.reason))
	} else {
		fields = append(fields, zap.String("error_code", aerr.code))
		if aerr.param != "" {
			fields = append(fields, zap.String("error_param", aerr.param))
		}
	}
	p.log.Info("request", fields...)
}
