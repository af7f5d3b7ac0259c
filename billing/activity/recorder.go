package activity

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/creditgate/creditgate/money"
)

// Client is the part of go-redis's clients the aggregate needs.
type Client interface {
	Pipeline() redis.Pipeliner
}

// Defaults of RecorderOptions.
const (
	DefaultQueueSize     = 8192
	DefaultFlushInterval = 500 * time.Millisecond
	maxBatch             = 1024            // events written by one flush at most
	flushTimeout         = 2 * time.Second // bounds a flush, so a dead Redis delays a shutdown little
)

// RecorderOptions configure a Recorder. Client is required.
type RecorderOptions struct {
	Client Client
	// Prefix starts every key, as the store's (redis.key_prefix).
	Prefix string
	// QueueSize bounds the events waiting for a flush; beyond it they are
	// dropped and counted (Dropped). Default DefaultQueueSize.
	QueueSize int
	// FlushInterval is how often queued events are written. Default
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// RecentCap is how many requests the recent list keeps. Default
	// DefaultRecentCap.
	RecentCap int
	// Now is the clock of events (default time.Now).
	Now func() time.Time
	// Logger gets a warning when a flush fails; nil discards.
	Logger *zap.Logger
}

// Recorder queues events and writes them to the aggregate in batches. Its
// event methods never block: a full queue drops the event. Run writes until
// its context ends; Flush writes what is queued now.
type Recorder struct {
	o       RecorderOptions
	k       keys
	queue   chan event
	dropped atomic.Int64
	mu      sync.Mutex // one flush at a time
}

// event is one thing to record; kind picks the fields used.
type event struct {
	kind    eventKind
	req     Request // settled, denied
	failure string  // rechargeFailed: the result
}

type eventKind uint8

const (
	settled eventKind = iota + 1
	denied
	rechargeFailed
)

// NewRecorder checks o and returns a Recorder; call Run to start writing.
func NewRecorder(o RecorderOptions) (*Recorder, error) {
	if o.Client == nil {
		return nil, errors.New("activity: RecorderOptions.Client is required")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.RecentCap <= 0 {
		o.RecentCap = DefaultRecentCap
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Recorder{o: o, k: keys{o.Prefix}, queue: make(chan event, o.QueueSize)}, nil
}

// Dropped is how many events a full queue turned away.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

func (r *Recorder) enqueue(e event) {
	select {
	case r.queue <- e:
	default:
		r.dropped.Add(1)
	}
}

// Settled records a settled request (req.Outcome and req.At are set here).
func (r *Recorder) Settled(req Request) {
	req.Outcome, req.Reason, req.At = OutcomeSettled, "", r.o.Now()
	r.enqueue(event{kind: settled, req: req})
}

// Denied records a request the ledger refused (a 429) for reason.
func (r *Recorder) Denied(req Request, reason string) {
	req.Outcome, req.Reason, req.At = OutcomeDenied, reason, r.o.Now()
	req.Cost = 0
	r.enqueue(event{kind: denied, req: req})
}

// RechargeFailed records an auto-recharge that did not pay, by its result
// (declined, refused, gave_up, …).
func (r *Recorder) RechargeFailed(result string) {
	r.enqueue(event{kind: rechargeFailed, failure: result, req: Request{At: r.o.Now()}})
}

// Run flushes every FlushInterval until ctx ends, then flushes once more.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.o.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
			_ = r.Flush(fctx)
			cancel()
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, flushTimeout)
			if err := r.Flush(fctx); err != nil && ctx.Err() == nil {
				r.o.Logger.Warn("activity: flush failed; those events are not in the console's overview", zap.Error(err))
			}
			cancel()
		}
	}
}

// Flush writes the queued events, in batches of at most maxBatch, each one
// pipeline. A batch that fails is lost (it is a dashboard's aggregate).
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		batch := r.take()
		if len(batch) == 0 {
			return nil
		}
		if err := r.write(ctx, batch); err != nil {
			return err
		}
	}
}

// take empties the queue into a batch of at most maxBatch events.
func (r *Recorder) take() []event {
	var batch []event
	for len(batch) < maxBatch {
		select {
		case e := <-r.queue:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

// write sums a batch and writes the sums in one pipeline: one INCRBY per
// period, one ZINCRBY per account and period, one HINCRBY per reason, the
// recent list pushed and trimmed, and every touched key's expiry.
func (r *Recorder) write(ctx context.Context, batch []event) error {
	type acctPeriod struct{ account, period string }
	type counter struct {
		key, field string
		ttl        time.Duration
	}
	spend := map[string]money.Micros{}
	requests := map[string]int64{}
	topDay := map[acctPeriod]money.Micros{}
	topMonth := map[acctPeriod]money.Micros{}
	counts := map[counter]int64{}
	var recent []interface{}
	// A batch's events are mostly of one day: its names are formatted once.
	var d, m string
	var lastDate [3]int
	for _, e := range batch {
		if y, mo, dd := e.req.At.UTC().Date(); d == "" || lastDate != [3]int{y, int(mo), dd} {
			d, m, lastDate = day(e.req.At), month(e.req.At), [3]int{y, int(mo), dd}
		}
		switch e.kind {
		case settled:
			for _, p := range []string{d, m} {
				spend[p] += e.req.Cost
				requests[p]++
			}
			if e.req.Cost > 0 {
				topDay[acctPeriod{e.req.Account, d}] += e.req.Cost
				topMonth[acctPeriod{e.req.Account, m}] += e.req.Cost
			}
			recent = append(recent, encodeRequest(e.req))
		case denied:
			counts[counter{r.k.denied(d), e.req.Reason, dayTTL}]++
			counts[counter{r.k.denied(m), e.req.Reason, monthTTL}]++
			recent = append(recent, encodeRequest(e.req))
		case rechargeFailed:
			counts[counter{r.k.recharge(d), e.failure, dayTTL}]++
			counts[counter{r.k.recharge(m), e.failure, monthTTL}]++
		}
	}
	ttl := func(period string, dayTTL, monthTTL time.Duration) time.Duration {
		if len(period) == len("2006-01-02") {
			return dayTTL
		}
		return monthTTL
	}
	pipe := r.o.Client.Pipeline()
	for p, v := range spend {
		pipe.IncrBy(ctx, r.k.spend(p), int64(v))
		pipe.Expire(ctx, r.k.spend(p), ttl(p, dayTTL, monthTTL))
	}
	for p, n := range requests {
		pipe.IncrBy(ctx, r.k.count(p), n)
		pipe.Expire(ctx, r.k.count(p), ttl(p, dayTTL, monthTTL))
	}
	for _, top := range []map[acctPeriod]money.Micros{topDay, topMonth} {
		periods := map[string]bool{}
		for ap, v := range top {
			pipe.ZIncrBy(ctx, r.k.top(ap.period), float64(v), ap.account)
			periods[ap.period] = true
		}
		for p := range periods {
			pipe.Expire(ctx, r.k.top(p), ttl(p, topDayTTL, topMonthTTL))
		}
	}
	expire := map[string]time.Duration{}
	for c, n := range counts {
		pipe.HIncrBy(ctx, c.key, c.field, n)
		expire[c.key] = c.ttl
	}
	for k, d := range expire {
		pipe.Expire(ctx, k, d)
	}
	if len(recent) > 0 {
		pipe.LPush(ctx, r.k.recent(), recent...)
		pipe.LTrim(ctx, r.k.recent(), 0, int64(r.o.RecentCap-1))
	}
	_, err := pipe.Exec(ctx)
	return err
}
