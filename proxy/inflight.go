package proxy

import (
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/internal/spool"
	"github.com/creditgate/creditgate/money"
)

// progressEvery bounds how often a relayed response's output is counted for its
// in-flight record: counting costs time linear in the text buffered since the last
// count, and the log itself writes at most every 64 tokens or 250 ms.
const progressEvery = 250 * time.Millisecond

// beginInFlight opens x's in-flight record, once x is admitted. cost is what
// x costs once answered when its price is not per token (a transcription
// priced per second of audio), else 0: a recovery prices the prompt and the
// output relayed.
func (p *Proxy) beginInFlight(x *exchange, cost money.Micros) {
	if p.opts.InFlight == nil {
		return
	}
	err := p.opts.InFlight.Begin(spool.InFlight{
		Account: x.key.Account, HoldID: x.id, RequestID: x.id, KeyID: x.key.ID, Model: x.model, Endpoint: x.path(),
		Price: x.price, Prompt: x.input, Held: x.held, Triggers: x.settings.Triggers, Started: x.start, Cost: cost,
	})
	if err != nil {
		p.log.Warn("in-flight record not written: a crash now would leave this request to hold_expired", zap.String("request_id", x.id), zapErr(err))
		return
	}
	x.inflight = true
}

// progressInFlight offers the output relayed so far to x's record: at once when
// first is set (the response starts), else at most every progressEvery.
func (p *Proxy) progressInFlight(x *exchange, first bool) {
	if !x.inflight {
		return
	}
	var out int64
	if !first {
		now := p.opts.Now()
		if now.Sub(x.progressAt) < progressEvery {
			return
		}
		x.progressAt = now
		out = x.meter.Result().Local.Output
	} else {
		x.progressAt = p.opts.Now()
	}
	if err := p.opts.InFlight.Progress(x.id, out); err != nil {
		p.log.Warn("in-flight record: progress not written", zap.String("request_id", x.id), zapErr(err))
	}
}

// endInFlight closes x's record once it is settled, released or spooled.
func (p *Proxy) endInFlight(x *exchange) {
	if !x.inflight {
		return
	}
	x.inflight = false
	if err := p.opts.InFlight.End(x.id); err != nil {
		p.log.Warn("in-flight record: end not written; a restart will find this request booked and drop it", zap.String("request_id", x.id), zapErr(err))
	}
}
