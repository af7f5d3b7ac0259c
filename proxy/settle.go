package proxy

import (
	"context"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// finish settles the request (or releases its hold) and writes its log line.
//
// Billing rules: an upstream error status or no answer at all releases the hold,
// and so does a 2xx body that is not the endpoint's (answered 502); a 2xx is billed
// by the upstream's usage when it reported one, else by the local count of the
// prompt and of the output the proxy relayed — which is what an app that
// disconnects mid-stream pays for, and what a response the upstream broke off
// costs. Either way a response is billed at most what its request could cost: the
// prompt plus the output cap it was sent (Limit.Bill, never more than the hold);
// what the upstream claimed beyond that is recorded as excess, not charged.
func (p *Proxy) finish(ctx context.Context, x *exchange) {
	switch {
	case x.upstreamStatus < 200 || x.upstreamStatus > 299 || x.upstreamErr != nil: // 0: no answer
		note := "upstream error"
		if x.upstreamErr != nil && errors.Is(x.upstreamErr, context.Canceled) {
			note = "client disconnected before the upstream answered"
		}
		st := p.release(ctx, x, note)
		p.done(x, metering.Result{}, "", st)
		return
	case x.upstream.invalid:
		st := p.release(ctx, x, "the upstream's 2xx body is not a response of this endpoint: not relayed")
		p.done(x, metering.Result{}, faultInvalid, st)
		return
	case x.backgroundLost:
		st := p.release(ctx, x, "background response not recorded: cancelled at the upstream, answered 503")
		p.done(x, metering.Result{}, "", st)
		return
	case x.background != nil:
		// Running at the upstream: the hold stays, the batch poller bills it.
		p.done(x, metering.Result{}, "", billing.Settlement{})
		return
	}
	switch {
	case x.plain != nil:
		x.plain.feed(x.meter)
	case x.req.RawBody() && x.upstream.err == nil:
		x.meter.Body(nil) // the raw body was relayed to its end
	}
	result := p.settledPrompt(x, x.meter.Result())
	x.bill = x.limit.Bill(result)
	fault := x.upstream.fault(x)
	note := ""
	switch {
	case result.Cut:
		fault, note = faultOutputCap, "output cap reached: the upstream wrote past it, the stream was ended there"
	case fault == faultCut:
		note = "the upstream broke the response off: billed for what was relayed"
	case fault == faultTimeout:
		note = "the upstream did not finish within upstream.timeout: billed for what was relayed"
	case !result.Done:
		note = "response incomplete"
	}
	t := x.bill.Tokens
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.SettleTimeout)
	defer cancel()
	req := billing.SettleRequest{
		Account: x.key.Account, HoldID: x.id, Cost: x.bill.Cost, Triggers: x.settings.Triggers,
		Usage: billing.Usage{
			RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path(),
			PromptTokens: t.Input, CompletionTokens: t.Output,
			CachedTokens: t.CachedInput, ReasoningTokens: t.Reasoning,
			AudioPromptTokens: t.AudioInput, AudioCompletionTokens: t.AudioOutput,
			LocalPromptTokens: result.Local.Input, LocalCompletionTokens: result.Local.Output,
			TokenSource: result.Source, Excess: x.bill.Excess, ExcessTokens: x.bill.ExcessTokens, Note: note, Prices: unitPrices(x.price),
		},
	}
	st := p.book(sctx, x, req)
	p.done(x, result, fault, st)
}

// book settles req: on success it tells OnSettled; when the store is
// unavailable it spools the settlement for replay; a refusal is logged (the
// usage is not booked).
func (p *Proxy) book(ctx context.Context, x *exchange, req billing.SettleRequest) billing.Settlement {
	st, err := p.opts.Ledger.Settle(ctx, req)
	switch {
	case err == nil:
		if p.opts.OnSettled != nil {
			p.opts.OnSettled(x.key.Account, st)
		}
	case errors.Is(err, billing.ErrUnavailable):
		p.spool(x, billing.PendingSettlement{Settle: req}, err)
	default:
		p.log.Error("settle refused: usage not booked", zap.String("request_id", x.id), zap.String("account", x.key.Account),
			zap.Stringer("cost", x.bill.Cost), zapErr(err))
	}
	return st
}

// unitPrices are the prices p bills at, for the usage event.
func unitPrices(p metering.Price) *billing.UnitPrices {
	return &billing.UnitPrices{Input: p.Input, CachedInput: p.CachedInput, AudioInput: p.AudioInput,
		Output: p.Output, Reasoning: p.Reasoning, AudioOutput: p.AudioOutput}
}

// release frees x's hold, with a bounded, non-cancellable context.
func (p *Proxy) release(ctx context.Context, x *exchange, note string) billing.Settlement {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.SettleTimeout)
	defer cancel()
	u := billing.Usage{RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path(), Note: note}
	st, err := p.opts.Ledger.Release(sctx, x.key.Account, x.id, u)
	switch {
	case errors.Is(err, billing.ErrUnavailable):
		p.spool(x, billing.PendingSettlement{Release: true, Settle: billing.SettleRequest{Account: x.key.Account, HoldID: x.id, Usage: u}}, err)
	case err != nil:
		p.log.Error("release refused: the hold expires after hold_ttl", zap.String("request_id", x.id), zap.String("account", x.key.Account), zapErr(err))
	}
	return st
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

// done reports a finished exchange to the observer and the log: res is what the
// response said (the claimed tokens, for the drift check), x.bill what it was billed.
func (p *Proxy) done(x *exchange, res metering.Result, fault string, st billing.Settlement) {
	drift := drifts(x, res)
	rep := Report{
		Endpoint: x.path(), Model: x.model, Stream: x.req.Stream, Status: x.status(fault), Tokens: x.bill.Tokens, TokenSource: res.Source,
		Local: res.Local, Drift: drift, Cost: x.bill.Cost, Excess: x.bill.Excess, ExcessTokens: x.bill.ExcessTokens, Fault: fault,
		Clamped: x.clampedTo > 0, Forwarded: true, UpstreamStatus: x.upstreamStatus, Latency: p.opts.Now().Sub(x.start),
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

// status is what the app was answered: 499 when it left before any answer; 502 or
// 504 for a plain body the upstream broke off or timed out on (the app got a
// truncated body and a dropped connection), and 502 for a stream that was not one
// (the app got an error event); otherwise the status sent.
func (x *exchange) status(fault string) int {
	switch {
	case x.rec.status == 0:
		return 499
	case x.plain != nil && fault == faultCut, x.upstream.stream && fault == faultInvalid:
		return http.StatusBadGateway
	case x.plain != nil && fault == faultTimeout:
		return http.StatusGatewayTimeout
	}
	return x.rec.status
}
