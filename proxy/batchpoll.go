package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// The batch poller settles the holds of batches that ended. Each round, one
// proxy among all looks at every open batch at the upstream (the store's lease
// "batches", by the proxies' clocks, which the embedded store honours too):
//
//	completed, expired, cancelled  settled from its output file: the usage of
//	                               each request that ran, at the batch's price
//	                               (an expired or cancelled batch pays for what
//	                               ran; with no output file, nothing ran: released)
//	failed                         released: nothing ran
//	unknown to the upstream        released, with a warning
//	anything else                  still running: looked at again next round
//
// Settling is idempotent by the batch's hold id (the ledger's own rule), and
// the hold's outcome is asked first, so a round that settled a batch but could
// not close it books nothing the next time. A batch leaves the open set only
// after its hold is booked.

// BatchSweep is what one round of the poller did.
type BatchSweep struct {
	Open     int // still running
	Settled  int
	Released int
	Failed   int // not settled this round (the upstream or the store failed): retried
}

// maxOpenBatchesPerRound bounds one round; the rest wait for the next.
const maxOpenBatchesPerRound = 1000

// BatchPollLease names the store lease one poller takes per round.
const BatchPollLease = "batches"

// RunBatchPoller settles ended batches every interval until ctx ends, when
// this proxy wins the round's lease. It returns at once without a batch store.
func (p *Proxy) RunBatchPoller(ctx context.Context, interval time.Duration) {
	if p.opts.Batches == nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := p.opts.Batches.TryLease(ctx, BatchPollLease, interval)
		if err != nil {
			p.log.Warn("batch poller: lease unavailable; skipping this round", zapErr(err))
			continue
		}
		if !ok {
			continue // another proxy polls this round
		}
		if sw, err := p.SettleBatches(ctx); err != nil {
			p.log.Warn("batch poller: round stopped", zap.Any("sweep", sw), zapErr(err))
		}
	}
}

// SettleBatches looks once at every open batch (up to 1000) and settles or
// releases those that ended. Callers take the lease (RunBatchPoller does).
func (p *Proxy) SettleBatches(ctx context.Context) (BatchSweep, error) {
	var sw BatchSweep
	if p.opts.Batches == nil {
		return sw, nil
	}
	refs, err := p.opts.Batches.OpenBatches(ctx, maxOpenBatchesPerRound)
	if err != nil {
		return sw, err
	}
	for _, ref := range refs {
		if ctx.Err() != nil {
			return sw, ctx.Err()
		}
		switch p.pollBatch(ctx, ref) {
		case batchOpen:
			sw.Open++
		case batchSettled:
			sw.Settled++
		case batchReleased:
			sw.Released++
		default:
			sw.Failed++
		}
	}
	return sw, nil
}

type batchOutcome int

const (
	batchRetry batchOutcome = iota
	batchOpen
	batchSettled
	batchReleased
)

// pollBatch looks at one open batch and ends its hold when it ended.
func (p *Proxy) pollBatch(ctx context.Context, ref billing.BatchRef) batchOutcome {
	log := p.log.With(zap.String("account", ref.Account), zap.String("batch", ref.ID))
	b, err := p.opts.Batches.GetBatch(ctx, ref.Account, ref.ID)
	if errors.Is(err, billing.ErrObjectNotFound) {
		log.Error("batch poller: an open batch without its record: nothing to settle (its hold, if any, expires)")
		p.closeBatch(ctx, ref, log)
		return batchReleased
	}
	if err != nil {
		log.Warn("batch poller: record unavailable", zapErr(err))
		return batchRetry
	}
	log = log.With(zap.String("request_id", b.HoldID))
	if b.Background {
		return p.pollBackground(ctx, b, log) // background.go
	}
	status, body, err := p.upstreamJSON(ctx, upstreamPath(billing.ObjectBatch, b.ID))
	if err != nil {
		log.Warn("batch poller: upstream unavailable", zapErr(err))
		return batchRetry
	}
	var up batchFiles
	switch {
	case status == http.StatusNotFound:
		return p.endBatch(ctx, b, "the upstream no longer knows the batch", log)
	case status < 200 || status > 299 || json.Unmarshal(body, &up) != nil:
		log.Warn("batch poller: the upstream's answer is not a batch", zap.Int("status", status))
		return batchRetry
	}
	p.adoptBatchFiles(ctx, b.Account, body)
	switch up.Status {
	case "completed", "expired", "cancelled":
		if up.OutputFileID == "" {
			return p.endBatch(ctx, b, "batch "+up.Status+" with no output: nothing ran", log)
		}
		return p.settleBatchOutput(ctx, b, up, log)
	case "failed":
		return p.endBatch(ctx, b, "batch failed: nothing ran", log)
	}
	return batchOpen
}

// settleBatchOutput bills what ran, from the output file.
func (p *Proxy) settleBatchOutput(ctx context.Context, b billing.Batch, up batchFiles, log *zap.Logger) batchOutcome {
	ep, ok := metering.EndpointForPath(b.Endpoint)
	if !ok {
		log.Error("batch poller: the batch's endpoint is not metered", zap.String("endpoint", b.Endpoint))
		return batchRetry
	}
	if outcome, done := p.bookedAlready(ctx, b, log); done {
		return outcome
	}
	res, err := p.upstreamCall(ctx, http.MethodGet, upstreamPath(billing.ObjectFile, up.OutputFileID)+"/content", nil, "")
	if err != nil {
		log.Warn("batch poller: output file unavailable", zapErr(err))
		return batchRetry
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		log.Warn("batch poller: output file unavailable", zap.Int("status", res.StatusCode))
		return batchRetry
	}
	maxBytes := p.opts.MaxBatchInputBytes
	if maxBytes <= 0 {
		maxBytes = defaultMaxBatchInputBytes
	}
	used, err := metering.BatchUsage(res.Body, ep, 4*maxBytes, int(max(p.opts.MaxBodyBytes, 4*maxObjectBody)))
	if err != nil {
		log.Error("batch poller: the output file cannot be read; retried next round", zapErr(err))
		return batchRetry
	}
	cost := metering.DiscountedCost(priceOf(b.Prices), used.Tokens, b.Discount)
	note := fmt.Sprintf("batch %s %s: %d of %d requests answered, billed at %s of list prices", b.ID, up.Status, used.Answered, b.Requests, shareText(b.Discount))
	if used.Unmetered > 0 {
		note += fmt.Sprintf("; %d answers without usage not billed", used.Unmetered)
		log.Warn("batch poller: answers without usage were not billed", zap.Int("unmetered", used.Unmetered))
	}
	s := p.opts.Settings()
	t := used.Tokens
	req := billing.SettleRequest{Account: b.Account, HoldID: b.HoldID, Cost: cost, Triggers: s.Triggers, Usage: billing.Usage{
		RequestID: b.HoldID, KeyID: b.KeyID, Model: b.Model, Endpoint: "/v1/batches",
		PromptTokens: t.Input, CompletionTokens: t.Output, CachedTokens: t.CachedInput, ReasoningTokens: t.Reasoning,
		AudioPromptTokens: t.AudioInput, AudioCompletionTokens: t.AudioOutput,
		TokenSource: billing.TokenSourceUpstream, Note: note, Prices: unitPrices(metering.DiscountedPrice(priceOf(b.Prices), b.Discount)),
	}}
	return p.bookEnded(ctx, b, req, log, zap.String("status", up.Status), zap.Int("answered", used.Answered), zap.Int("requests", b.Requests))
}

// openKind is what names an open record (a batch, or a background response:
// background.go) in notes and logs, and the endpoint its usage is booked under.
func openKind(b billing.Batch) (label, endpoint string) {
	if b.Background {
		return "background response", b.Endpoint
	}
	return "batch", "/v1/batches"
}

// bookedAlready takes an ended record whose hold a round booked already (and
// could not close) off the open set; done is false when it is still to book.
func (p *Proxy) bookedAlready(ctx context.Context, b billing.Batch, log *zap.Logger) (outcome batchOutcome, done bool) {
	booked, ok := p.holdBooked(ctx, b, log)
	switch {
	case !ok:
		return batchRetry, true
	case booked:
		p.closeBatch(ctx, billing.BatchRef{Account: b.Account, ID: b.ID}, log)
		return batchSettled, true
	}
	return 0, false
}

// bookEnded settles an ended record's hold with req, then takes it off the open
// set; fields describe it in the log line.
func (p *Proxy) bookEnded(ctx context.Context, b billing.Batch, req billing.SettleRequest, log *zap.Logger, fields ...zap.Field) batchOutcome {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.SettleTimeout)
	defer cancel()
	st, err := p.opts.Ledger.Settle(sctx, req)
	if err != nil {
		log.Warn("batch poller: settle failed; retried next round", zap.Stringer("cost", req.Cost), zapErr(err))
		return batchRetry
	}
	if p.opts.OnSettled != nil && !st.Replayed {
		p.opts.OnSettled(b.Account, st)
	}
	label, _ := openKind(b)
	log.Info(label+" settled", append([]zap.Field{zap.Stringer("cost", req.Cost), zap.Stringer("held", b.Held)}, fields...)...)
	p.closeBatch(ctx, billing.BatchRef{Account: b.Account, ID: b.ID}, log)
	return batchSettled
}

// endBatch releases the hold of a batch (or background response) that ran
// nothing billable.
func (p *Proxy) endBatch(ctx context.Context, b billing.Batch, why string, log *zap.Logger) batchOutcome {
	if booked, ok := p.holdBooked(ctx, b, log); !ok {
		return batchRetry
	} else if !booked {
		label, endpoint := openKind(b)
		u := billing.Usage{RequestID: b.HoldID, KeyID: b.KeyID, Model: b.Model, Endpoint: endpoint}
		if p.releaseBatchHold(ctx, b.Account, b.HoldID, u, label+" "+b.ID+": "+why) != nil {
			return batchRetry
		}
		log.Info(label+" released", zap.String("why", why), zap.Stringer("held", b.Held))
	}
	p.closeBatch(ctx, billing.BatchRef{Account: b.Account, ID: b.ID}, log)
	return batchReleased
}

// holdBooked asks the ledger whether the batch's hold was settled or released
// already (a round that booked it and could not close it); ok is false when it
// could not tell.
func (p *Proxy) holdBooked(ctx context.Context, b billing.Batch, log *zap.Logger) (booked, ok bool) {
	o, err := p.opts.Ledger.HoldOutcome(ctx, b.Account, b.HoldID, b.CreatedAt.Add(-10*time.Minute))
	if err != nil {
		log.Warn("batch poller: hold outcome unavailable", zapErr(err))
		return false, false
	}
	if o.State == billing.HoldTrimmed {
		log.Warn("batch poller: the ledger was trimmed past the batch's hold; whether it was booked cannot be told")
		return false, false
	}
	return o.Booked(), true
}

func (p *Proxy) closeBatch(ctx context.Context, ref billing.BatchRef, log *zap.Logger) {
	if err := p.opts.Batches.CloseBatch(ctx, ref.Account, ref.ID); err != nil {
		log.Warn("batch poller: could not close the batch; its hold is booked, the next round closes it", zapErr(err))
	}
}
