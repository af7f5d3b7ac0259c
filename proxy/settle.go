package proxy

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// finish settles the request (or releases its hold) and writes its log line.
//
// Billing rules: an upstream error status or no answer at all releases the hold;
// a 2xx is billed by the upstream's usage when it reported one, else by the local
// count of the prompt and of the output the proxy saw — which is what an app that
// disconnects mid-stream pays for.
func (p *Proxy) finish(ctx context.Context, x *exchange) {
	if x.upstreamStatus < 200 || x.upstreamStatus > 299 { // 0: no answer
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
			RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path(),
			PromptTokens: result.Tokens.Input, CompletionTokens: result.Tokens.Output,
			CachedTokens: result.Tokens.CachedInput, ReasoningTokens: result.Tokens.Reasoning,
			AudioPromptTokens: result.Tokens.AudioInput, AudioCompletionTokens: result.Tokens.AudioOutput,
			LocalPromptTokens: result.Local.Input, LocalCompletionTokens: result.Local.Output,
			TokenSource: result.Source, Note: note, Prices: unitPrices(x.price),
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

// done reports a finished exchange to the observer and the log.
func (p *Proxy) done(x *exchange, res metering.Result, cost money.Micros, st billing.Settlement) {
	drift := res.Source == billing.TokenSourceUpstream && metering.DriftExceeds(res.Tokens, res.Local, x.settings.DriftTolerance)
	rep := Report{
		Endpoint: x.path(), Model: x.model, Stream: x.req.Stream, Status: x.status(), Tokens: res.Tokens, TokenSource: res.Source,
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
