package proxy

import (
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/stdlog"
)

// logExchange writes the request's one log line. It never includes keys, prompts
// or completions. It is a warning when the counts drift, when the upstream's answer
// went wrong (reason), and when the upstream claimed more than the request could
// cost: then it carries the excess and the upstream's own counts, for a dispute.
func (p *Proxy) logExchange(x *exchange, res Report, st billing.Settlement) {
	level := zapcore.InfoLevel
	excess := res.Excess > 0 || res.ExcessTokens > 0
	if res.Drift || res.Fault != "" || excess {
		level = zapcore.WarnLevel
	}
	ce := p.reqLog.Check(level, "request")
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
		zap.String("endpoint", x.path()),
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
	if x.background != nil {
		fields = append(fields, zap.String("background_response", x.background.ID)) // billed when it ends
	}
	if x.clampedTo > 0 {
		fields = append(fields, zap.Int64("clamped_max_tokens", x.clampedTo))
	}
	if res.Drift {
		fields = append(fields, zap.Bool("token_drift", true))
	}
	if res.Fault != "" {
		fields = append(fields, zap.String("reason", res.Fault))
	}
	if excess {
		claimed := x.bill.Claimed
		fields = append(fields, zap.Stringer("excess", res.Excess), zap.Int64("excess_tokens", res.ExcessTokens),
			zap.Int64("upstream_prompt_tokens", claimed.Input), zap.Int64("upstream_completion_tokens", claimed.Output))
	}
	if x.upstreamErr != nil {
		// Transport errors quote what a broken upstream sent (`malformed HTTP
		// response "…"`): withheld, like every peer's bytes.
		fields = append(fields, zap.String("upstream_error", stdlog.Redact(x.upstreamErr.Error())))
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
		zap.String("endpoint", x.path()),
		zap.Int("status", aerr.status),
		zap.Duration("latency", p.opts.Now().Sub(x.start)),
	}
	if x.req != nil {
		fields = append(fields, zap.String("model", x.model), zap.String("requested_model", x.req.Model), zap.Bool("stream", x.req.Stream),
			zap.Int64("local_prompt_tokens", x.countedPrompt()), zap.Stringer("estimate", x.estimate))
	}
	if aerr.rateLimited != "" {
		fields = append(fields, zap.String("rate_limited", aerr.rateLimited))
	}
	if aerr.reason != "" {
		fields = append(fields, zap.String("reason", aerr.reason))
	} else {
		fields = append(fields, zap.String("error_code", aerr.code))
		if aerr.param != "" {
			fields = append(fields, zap.String("error_param", aerr.param))
		}
	}
	p.reqLog.Info("request", fields...)
}
