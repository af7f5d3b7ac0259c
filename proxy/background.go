package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// Background responses (POST /v1/responses with background: true) run at the
// upstream after its answer, which says only queued or in_progress; the usage
// comes with the finished response, which the app polls for. So the request's
// worst case stays held (for backgroundHoldTTL, not billing.hold_ttl) and the
// response joins the open batches, under a record that says it is one
// (billing.Batch.Background) with what bounds its bill: the prompt as counted
// here, the output cap it was sent, its prices and the hold. The batch poller
// then looks at it every round (GET /v1/responses/{id} at the upstream):
//
//	queued, in_progress            still running: looked at again next round
//	completed, incomplete,         billed by its usage (a cancelled response
//	cancelled                      pays for what it generated), within the
//	                               request's limit, as a plain answer is; with no
//	                               usage reported, by the local count
//	failed                         billed by its usage if it reports one, else
//	                               released
//	unknown to the upstream        released, with a warning
//
// A background answer the store cannot record is cancelled at the upstream and
// answered 503, its hold released: nothing runs that nobody would bill. An
// answer that is already final (an upstream that ran the response at once) is
// billed at once, like any other.

// backgroundHoldTTL is how long a background response's hold counts as
// reserved. A response still running then is billed all the same when it ends
// (a late settle still charges); the bound keeps an upstream that never ends
// one from holding the money forever.
const backgroundHoldTTL = 6 * time.Hour

// backgroundStatus is the part of a response object the proxy reads.
type backgroundStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// running reports whether a response with this status is still being generated.
func running(status string) bool { return status == "queued" || status == "in_progress" }

// holdTTL is how long x's hold is kept.
func holdTTL(x *exchange) time.Duration {
	if x.req.Background {
		return backgroundHoldTTL
	}
	return x.settings.Policy.HoldTTL
}

// checkBackground refuses background: true where nothing would poll for the
// response's end (a proxy without a batch store).
func (p *Proxy) checkBackground(x *exchange) *apiError {
	if !x.req.Background || p.opts.Batches != nil {
		return nil
	}
	return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: "background", code: "unsupported_parameter",
		message: "This gateway does not run background responses; send the request without background: true."}
}

// openBackground reads a background request's 2xx answer before any of it is
// relayed (it is a small JSON object) and, when it says the response is still
// running, records the response as open (see above). The answer is relayed as
// read. A failure to record it turns the answer into a 503 and releases the
// hold in finish.
func (p *Proxy) openBackground(x *exchange, res *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(x.plain, maxObjectBody+1))
	if err != nil {
		x.plain.Close()
		return err // answered as a failed exchange: the hold is released
	}
	if len(body) > maxObjectBody {
		// No queued response is this large: relayed whole and billed in finish.
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), x.plain), x.plain}
		return nil
	}
	x.plain.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	var st backgroundStatus
	if json.Unmarshal(body, &st) != nil || !running(st.Status) {
		return nil // final already (or not one to poll): billed in finish, as any answer
	}
	now := p.opts.Now()
	rec := billing.Batch{ID: st.ID, Account: x.key.Account, KeyID: x.key.ID, HoldID: x.id, Endpoint: x.path(), Model: x.model,
		Prices: *unitPrices(x.price), Discount: 1_000_000, Requests: 1, Held: x.held, CreatedAt: now, HoldExpires: now.Add(backgroundHoldTTL),
		Background: true, InputTokens: x.meter.ExactInput().Input, OutputCap: x.limit.PerChoice}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.in.Context()), p.opts.SettleTimeout)
	defer cancel()
	if err := p.opts.Batches.OpenBatch(ctx, rec); err != nil {
		p.undo(ctx, x.key.Account, http.MethodPost, upstreamPath(billing.ObjectResponse, st.ID)+"/cancel")
		p.log.Error("background response not recorded: cancelled at the upstream", zap.String("request_id", x.id),
			zap.String("account", x.key.Account), zap.String("response", st.ID), zapErr(err))
		answerWith(res, errBackgroundNotRecorded())
		x.backgroundLost = true
		return nil
	}
	x.background = &rec
	// The poller bills it from here on: a crash now must not settle it for its
	// prompt from the in-flight record (the poller would then find it booked).
	p.endInFlight(x)
	return nil
}

func errBackgroundNotRecorded() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: typeServer, code: "billing_unavailable",
		message: "The billing store could not record this background response, so it was cancelled at the upstream and you were not charged. Please retry shortly."}
}

// pollBackground looks at one open background response and bills it when it
// ended.
func (p *Proxy) pollBackground(ctx context.Context, b billing.Batch, log *zap.Logger) batchOutcome {
	status, body, err := p.upstreamJSON(ctx, upstreamPath(billing.ObjectResponse, b.ID))
	if err != nil {
		log.Warn("batch poller: upstream unavailable", zapErr(err))
		return batchRetry
	}
	var st backgroundStatus
	switch {
	case status == http.StatusNotFound:
		return p.endBatch(ctx, b, "the upstream no longer knows the response", log)
	case status < 200 || status > 299 || json.Unmarshal(body, &st) != nil || st.Status == "":
		log.Warn("batch poller: the upstream's answer is not a response", zap.Int("status", status))
		return batchRetry
	case running(st.Status):
		return batchOpen
	}
	encoding := metering.EncodingForModel(b.Model)
	tok, err := metering.TokenizerFor(encoding)
	if err != nil {
		log.Error("batch poller: tokenizer unavailable", zap.String("encoding", encoding), zapErr(err))
		return batchRetry
	}
	input := metering.Tokens{Input: b.InputTokens}
	meter := metering.NewResponseMeter(&metering.Request{Endpoint: metering.Responses}, tok, input)
	meter.Body(body)
	result := meter.Result()
	if st.Status == "failed" && result.Source != metering.SourceUpstream {
		return p.endBatch(ctx, b, "the response failed without usage", log)
	}
	limit := metering.Limit{PerChoice: b.OutputCap, Choices: 1, Price: priceOf(b.Prices), Input: input, Hold: b.Held}
	bill := limit.Bill(result)
	if outcome, done := p.bookedAlready(ctx, b, log); done {
		return outcome
	}
	t := bill.Tokens
	req := billing.SettleRequest{Account: b.Account, HoldID: b.HoldID, Cost: bill.Cost, Triggers: p.opts.Settings().Triggers, Usage: billing.Usage{
		RequestID: b.HoldID, KeyID: b.KeyID, Model: b.Model, Endpoint: b.Endpoint,
		PromptTokens: t.Input, CompletionTokens: t.Output, CachedTokens: t.CachedInput, ReasoningTokens: t.Reasoning,
		AudioPromptTokens: t.AudioInput, AudioCompletionTokens: t.AudioOutput,
		LocalPromptTokens: result.Local.Input, LocalCompletionTokens: result.Local.Output,
		TokenSource: result.Source, Excess: bill.Excess, ExcessTokens: bill.ExcessTokens,
		Note: "background response " + b.ID + " " + st.Status, Prices: unitPrices(priceOf(b.Prices)),
	}}
	return p.bookEnded(ctx, b, req, log, zap.String("status", st.Status),
		zap.Int64("prompt_tokens", t.Input), zap.Int64("completion_tokens", t.Output), zap.String("token_source", result.Source))
}
