package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// POST /v1/audio/transcriptions and /v1/audio/translations: a multipart upload
// of an audio file, metered by metering.Transcription. The body is read whole
// within limits.max_body_bytes (413 beyond it, refused from Content-Length
// before a byte is read), so the form's field order does not matter — the
// official SDKs send the file before the model — and the audio's duration is
// read from the file's own header. The request is then admitted like any other:
// priced by its model, held at its worst case (the seconds at the per-minute
// price, or the duration's token bound plus the model's largest output),
// forwarded byte for byte, and settled from the answer: per second of audio
// for a per-minute model, else by the usage the answer reports (or, for text,
// srt and vtt answers, which carry none, the local count), never above the
// hold. An upstream error releases the hold. The answer is relayed as the
// upstream sent it, after it has been read whole (within
// maxTranscriptionAnswer) — but for a stream (stream=true: the GPT-4o
// transcribe models answer SSE), relayed as it arrives, event by event, and
// billed by its transcript.text.done event's usage, or by the text relayed
// when the stream ends before it.

// maxTranscriptionAnswer bounds an upstream answer (a verbose_json of hours of
// audio with word timestamps is a few MB).
const maxTranscriptionAnswer = 16 << 20

// serveTranscription handles one transcription or translation from
// authentication to its log line.
func (p *Proxy) serveTranscription(w http.ResponseWriter, r *http.Request, ep metering.Endpoint) {
	x := &exchange{id: billing.NewID("req_"), start: p.opts.Now(), endpoint: ep, settings: p.opts.Settings(), in: r, w: w}
	w.Header().Set(RequestIDHeader, x.id)
	t, tok, aerr := p.admitTranscription(x)
	if aerr != nil {
		writeError(w, aerr)
		p.logRejected(x, aerr)
		p.opts.Observer.RequestDone(Report{Endpoint: x.path(), Model: x.model, Status: aerr.status, Reason: quotaReason(aerr),
			RateLimited: aerr.rateLimited, Latency: p.opts.Now().Sub(x.start)})
		return
	}
	p.opts.Observer.HoldOpened()
	defer p.opts.Observer.HoldClosed()
	// The in-flight record lets a restart bill a transcription whose answer was
	// relayed (at its per-second cost, or its input bound) and release one
	// that had none; it ends once the request is settled, released or spooled.
	var perSecond money.Micros // a per-minute model's cost, known from the file's header
	if metering.PerMinute(x.price) {
		perSecond = min(metering.AudioCost(x.price.AudioMinute, t.Seconds()), x.held)
	}
	p.beginInFlight(x, perSecond)
	defer p.endInFlight(x)

	ctx, cancel := context.WithTimeout(r.Context(), p.opts.Timeout)
	defer cancel()
	x.forwardAt = p.opts.Now()
	path := strings.TrimPrefix(strings.TrimSuffix(x.path(), "/"), "/v1")
	up, err := p.upstreamCall(ctx, http.MethodPost, path, bytes.NewReader(x.body), r.Header.Get("Content-Type"))
	var answer []byte
	if err == nil {
		x.responseAt, x.upstreamStatus = p.opts.Now(), up.StatusCode
		if up.StatusCode >= 200 && up.StatusCode <= 299 {
			p.progressInFlight(x, true) // the answer is here: a crash from now on bills it
		}
		if up.StatusCode >= 200 && up.StatusCode <= 299 && isEventStream(up.Header.Get("Content-Type")) && !metering.PerMinute(x.price) {
			p.relayTranscriptionStream(ctx, x, t, tok, up)
			return
		}
		answer, err = io.ReadAll(io.LimitReader(up.Body, maxTranscriptionAnswer+1))
		up.Body.Close()
		if err == nil && len(answer) > maxTranscriptionAnswer {
			err = fmt.Errorf("the upstream's answer is larger than %d bytes", maxTranscriptionAnswer)
		}
	}
	if err != nil {
		x.upstreamErr = err
		st := p.release(ctx, x, "upstream error")
		status := 499 // the app went away: nobody to answer
		if !errors.Is(err, context.Canceled) {
			aerr := p.upstreamFailure(err)
			writeError(w, aerr)
			status = aerr.status
		}
		p.transcriptionDone(x, metering.Result{}, st, status)
		return
	}
	if up.StatusCode < 200 || up.StatusCode > 299 {
		st := p.release(ctx, x, "upstream error")
		writeUpstream(w, up, answer)
		p.transcriptionDone(x, metering.Result{}, st, up.StatusCode)
		return
	}
	writeUpstream(w, up, answer)
	note := ""
	var res metering.Result
	if metering.PerMinute(x.price) {
		x.bill = metering.Bill{Cost: perSecond}
		note = fmt.Sprintf("%d s of audio (%s header) at %s USD/min", t.Seconds(), t.Format, x.price.AudioMinute)
		if heard, ok := metering.UpstreamAudioSeconds(up.Header.Get("Content-Type"), answer); ok && heard > float64(t.Seconds())+1 {
			// The upstream heard more audio than the header says: a header that
			// lies (or a parser bug) under-bills. Billed by the header all the same.
			p.log.Warn("audio duration drift: the upstream reports more audio than the file's header",
				zap.String("request_id", x.id), zap.String("account", x.key.Account), zap.Int64("file_seconds", t.Seconds()),
				zap.Float64("upstream_seconds", heard), zap.String("format", string(t.Format)))
		}
	} else {
		x.limit = t.Limit(x.price, x.input, x.held)
		x.bill, res = t.Bill(x.limit, up.Header.Get("Content-Type"), answer, tok)
		if res.Source == billing.TokenSourceLocal {
			note = fmt.Sprintf("no usage in the answer: %d s of audio (%s header) at %d audio tokens a second, the text counted locally",
				t.Seconds(), t.Format, metering.TranscribeAudioTokensPerSecond)
		}
	}
	st := p.settleTranscription(ctx, x, res, note)
	p.transcriptionDone(x, res, st, up.StatusCode)
}

// relayTranscriptionStream relays a streamed transcription as it arrives,
// metering it on the way, then settles it.
func (p *Proxy) relayTranscriptionStream(ctx context.Context, x *exchange, t *metering.Transcription, tok metering.Tokenizer, up *http.Response) {
	defer up.Body.Close()
	h := x.w.Header()
	h.Set("Content-Type", up.Header.Get("Content-Type"))
	h.Set("Cache-Control", "no-cache")
	if id := up.Header.Get("X-Request-Id"); id != "" {
		h.Set("X-Request-Id", id)
	}
	x.w.WriteHeader(up.StatusCode)
	rc := http.NewResponseController(x.w)
	_ = rc.Flush()
	meter := metering.NewTranscriptionStream(tok)
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	for {
		n, err := up.Body.Read(*buf)
		if n > 0 {
			_, _ = meter.Write((*buf)[:n])
			if _, werr := x.w.Write((*buf)[:n]); werr != nil {
				x.upstreamErr = werr // the app went away: billed for what was relayed
				break
			}
			_ = rc.Flush()
		}
		if err != nil {
			if err != io.EOF {
				x.upstreamErr = err
			}
			break
		}
	}
	x.limit = t.Limit(x.price, x.input, x.held)
	var res metering.Result
	x.bill, res = t.BillStream(x.limit, meter)
	note := ""
	if !meter.Done() {
		note = "the stream ended before transcript.text.done: billed for the text relayed"
	} else if res.Source == billing.TokenSourceLocal {
		note = "no usage in transcript.text.done: the text counted locally"
	}
	st := p.settleTranscription(ctx, x, res, note)
	p.transcriptionDone(x, res, st, up.StatusCode)
}

// admitTranscription authenticates, reads and parses the upload, prices it,
// counts it against the rate limits and holds its worst case.
func (p *Proxy) admitTranscription(x *exchange) (*metering.Transcription, metering.Tokenizer, *apiError) {
	if aerr := p.authenticateKey(x); aerr != nil {
		return nil, nil, aerr
	}
	if aerr := p.readBody(x); aerr != nil {
		return nil, nil, aerr
	}
	t, err := metering.ParseTranscription(x.endpoint, x.in.Header.Get("Content-Type"), x.body)
	if err != nil {
		var re *metering.RequestError
		if errors.As(err, &re) {
			return nil, nil, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: re.Param, message: re.Message}
		}
		return nil, nil, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, message: err.Error()}
	}
	// The log line and the report read the model off x.req; nothing else does here.
	x.req = &metering.Request{Endpoint: x.endpoint, Model: t.Model, Stream: t.Stream}
	if aerr := p.priceModel(x); aerr != nil {
		return nil, nil, aerr
	}
	if aerr := p.checkModel(x); aerr != nil {
		return nil, nil, aerr
	}
	encoding := x.price.Encoding
	if encoding == "" {
		encoding = metering.EncodingForModel(t.Model)
	}
	tok, err := metering.TokenizerFor(encoding)
	if err != nil {
		p.log.Error("tokenizer unavailable", zap.String("encoding", encoding), zapErr(err))
		return nil, nil, errInternal()
	}
	var rateTokens int64 // a per-minute model counts as a request, no tokens
	if !metering.PerMinute(x.price) {
		x.input = t.InputBound(tok)
		rateTokens = x.input.Input + x.price.MaxOutput()
	}
	x.estimate = t.Estimate(x.price, x.input)
	if aerr := p.rateLimitTokens(x, rateTokens); aerr != nil {
		return nil, nil, aerr
	}
	return t, tok, p.holdTranscription(x)
}

// holdTranscription reserves the estimate whole: an upload has no output cap
// to lower, so it is never clamped.
func (p *Proxy) holdTranscription(x *exchange) *apiError {
	ctx, s := x.in.Context(), x.settings
	res, err := p.opts.Ledger.Reserve(ctx, withLimits(billing.ReserveRequest{
		Account: x.key.Account, HoldID: x.id, Estimate: x.estimate, Minimum: x.estimate,
		Grace: s.Policy.Grace, TTL: s.Policy.HoldTTL,
		RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path(),
	}, x.key, s.Policy))
	if err != nil {
		if errors.Is(err, billing.ErrAccountNotFound) {
			p.forgetKey(x.in)
		}
		if reserveMayHaveApplied(err) {
			p.releaseAfterFailedReserve(x, err)
		}
		return p.storeError(err, "reserve failed", zap.String("request_id", x.id))
	}
	if !res.Admitted {
		return errDenied(res.Reason, x.key, p.opts.Now())
	}
	x.held = res.Held
	return nil
}

// settleTranscription books x.bill, spooling it when the store is unavailable.
func (p *Proxy) settleTranscription(ctx context.Context, x *exchange, res metering.Result, note string) billing.Settlement {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.SettleTimeout)
	defer cancel()
	t := x.bill.Tokens
	req := billing.SettleRequest{
		Account: x.key.Account, HoldID: x.id, Cost: x.bill.Cost, Triggers: x.settings.Triggers,
		Usage: billing.Usage{
			RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path(),
			PromptTokens: t.Input, CompletionTokens: t.Output, AudioPromptTokens: t.AudioInput,
			LocalPromptTokens: res.Local.Input, LocalCompletionTokens: res.Local.Output,
			TokenSource: res.Source, Excess: x.bill.Excess, ExcessTokens: x.bill.ExcessTokens, Note: note, Prices: unitPrices(x.price),
		},
	}
	return p.book(sctx, x, req)
}

// transcriptionDone reports a forwarded transcription to the observer and the log.
func (p *Proxy) transcriptionDone(x *exchange, res metering.Result, st billing.Settlement, status int) {
	rep := Report{
		Endpoint: x.path(), Model: x.model, Status: status, Tokens: x.bill.Tokens, TokenSource: res.Source, Local: res.Local,
		Cost: x.bill.Cost, Excess: x.bill.Excess, ExcessTokens: x.bill.ExcessTokens, Forwarded: true,
		UpstreamStatus: x.upstreamStatus, Latency: p.opts.Now().Sub(x.start),
	}
	if !x.responseAt.IsZero() {
		rep.UpstreamTime = x.responseAt.Sub(x.forwardAt)
	}
	p.opts.Observer.RequestDone(rep)
	p.logExchange(x, rep, st)
}

// transcriptionEndpoint reports whether ep is a transcription or translation.
func transcriptionEndpoint(ep metering.Endpoint) bool {
	return ep == metering.Transcriptions || ep == metering.Translations
}

// errAudioOnly refuses a model priced per minute of audio alone (whisper-1) on
// an endpoint billed by tokens, where it would cost nothing.
func errAudioOnly(model string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: "model", code: "model_not_found",
		message: "The model `" + model + "` is priced per minute of audio: this gateway serves it on /v1/audio/transcriptions and /v1/audio/translations only."}
}
