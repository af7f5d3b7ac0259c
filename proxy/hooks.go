package proxy

import (
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/spool"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// Report describes one finished data-plane request, for metrics.
type Report struct {
	Endpoint string // the request path, e.g. "/v1/chat/completions"
	Model    string // the priced model name ("" if the request never got that far)
	Stream   bool
	Status   int    // the status answered to the app (499: the app left first; 502/504: the upstream broke a plain body off, see exchange.status)
	Reason   string // for a 429: billing.ReasonEmpty, ReasonExpired or ReasonInsufficient
	// RateLimited is a rate-limit 429's type: billing.RateLimitRequests or RateLimitTokens.
	RateLimited string
	// Tokens billed, their source ("upstream" or "local") and the local count.
	Tokens      metering.Tokens
	TokenSource string
	Local       metering.Tokens
	Drift       bool // upstream and local counts differ beyond the tolerance
	Cost        money.Micros
	// Excess is what the upstream claimed beyond what the request could cost (its
	// reported usage, or the output it sent past the cap), not charged; ExcessTokens
	// the tokens of it. Fault says how the upstream's answer went wrong, when it did:
	// "output_cap", "upstream_cut", "upstream_timeout", "upstream_invalid_response".
	Excess       money.Micros
	ExcessTokens int64
	Fault        string
	Clamped      bool
	Forwarded    bool // the request reached the upstream
	// UpstreamStatus is the upstream's status (0: no answer).
	UpstreamStatus int
	Latency        time.Duration // the whole request
	UpstreamTime   time.Duration // forward → upstream response headers
	TTFT           time.Duration // request start → first body byte to the app (0: none)
}

// Observer is told about every request; a metrics implementation records it.
// Methods are called on the request path and must not block.
type Observer interface {
	// HoldOpened and HoldClosed bracket every admitted request's hold.
	HoldOpened()
	HoldClosed()
	// RequestDone is called once per request, after its settlement.
	RequestDone(Report)
}

// Spool keeps settlements and releases the store could not take (Redis down after
// the upstream answered), so they are applied later instead of lost. Save must be
// durable when it returns nil.
type Spool interface {
	Save(billing.PendingSettlement) error
}

// InFlightLog keeps a durable record of each admitted request while it runs
// (internal/spool), so that a restart after a crash settles what a dead process
// relayed instead of letting its hold die unbilled. Begin is called once the
// request is admitted, Progress as output is relayed (the running local count of
// output tokens; the log bounds how often it writes), End once it is settled,
// released or spooled. Errors are logged, never fatal to the request.
type InFlightLog interface {
	Begin(spool.InFlight) error
	Progress(holdID string, outputTokens int64) error
	End(holdID string) error
}

type nopObserver struct{}

func (nopObserver) HoldOpened()        {}
func (nopObserver) HoldClosed()        {}
func (nopObserver) RequestDone(Report) {}
