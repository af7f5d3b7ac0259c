package redisstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Automatic pipelining (Options.Pipeline): the scripts that concurrent callers
// run at the same moment leave in one pipeline, one write and one read for the
// batch, so the per-command cost of a round trip (system calls on both sides,
// Redis's reading and replying) is paid once per batch rather than once per
// request. Nothing waits for a batch to fill: a worker takes what is queued when
// it becomes free, so one request alone goes at once, as without pipelining, and
// a batch only forms while earlier ones are in flight. Each script still runs
// atomically on its own; a pipeline changes nothing of what the scripts see. On
// a Redis Cluster, go-redis splits a pipeline by node and sends the parts
// concurrently.

// PipelineOptions configure automatic pipelining.
type PipelineOptions struct {
	// MaxBatch is the most scripts one pipeline carries; 0 or 1 turns
	// pipelining off (each script is its own round trip, as before). 64 keeps a
	// batch's request under ~40 KB for the ledger's scripts.
	MaxBatch int
	// Workers is how many pipelines may be in flight at once (default 4): a slow
	// batch delays only what queued behind it on its worker.
	Workers int
}

// On reports whether scripts are pipelined.
func (o PipelineOptions) On() bool { return o.MaxBatch > 1 }

// maxPipelineBatch bounds MaxBatch: past a few hundred, a batch's replies sit
// in Redis's output buffer and a slow one holds every caller of the batch.
const maxPipelineBatch = 1024

// queuedScript is one caller's script waiting for a pipeline.
type queuedScript struct {
	ctx  context.Context
	sc   *script
	call []any             // the command (evalHead and the arguments)
	done chan scriptResult // buffered: a worker never blocks on a caller that left
}

type scriptResult struct {
	v   any
	err error
}

// pipelineRunner batches scripts into pipelines (see PipelineOptions).
type pipelineRunner struct {
	c     Client
	pipe  func() redis.Pipeliner
	queue chan *queuedScript
	max   int
	stop  chan struct{}
	// mu orders close against queueing: a script queued before close is
	// answered (by a worker, or by the drain), none is queued after it.
	mu     sync.RWMutex
	closed bool
}

func newPipelineRunner(c Client, p pipeliner, o PipelineOptions) *pipelineRunner {
	workers := o.Workers
	if workers <= 0 {
		workers = 4
	}
	r := &pipelineRunner{c: c, pipe: p.Pipeline, queue: make(chan *queuedScript, o.MaxBatch*workers), max: o.MaxBatch, stop: make(chan struct{})}
	for range workers {
		go r.work()
	}
	return r
}

// close stops the workers; scripts queued after it fail.
func (r *pipelineRunner) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
}

var errStoreClosed = errors.New("redisstore: store closed")

// run queues sc and waits for its reply or ctx's end. A caller that leaves on
// ctx may still see its script run, exactly as when a reply is lost in flight:
// every script is idempotent by its id for that reason.
func (r *pipelineRunner) run(ctx context.Context, sc *script, call []any) (any, error) {
	q := &queuedScript{ctx: ctx, sc: sc, call: call, done: make(chan scriptResult, 1)}
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return nil, errStoreClosed
	}
	select {
	case r.queue <- q:
		r.mu.RUnlock()
	case <-ctx.Done():
		r.mu.RUnlock()
		return nil, ctx.Err()
	}
	select {
	case res := <-q.done:
		return res.v, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *pipelineRunner) work() {
	batch := make([]*queuedScript, 0, r.max)
	for {
		select {
		case q := <-r.queue:
			batch = append(batch[:0], q)
		case <-r.stop:
			r.drain()
			return
		}
	fill:
		for len(batch) < r.max {
			select {
			case q := <-r.queue:
				batch = append(batch, q)
			default:
				break fill
			}
		}
		r.exec(batch)
		clear(batch) // drop the references: the callers' args may be large
	}
}

// drain answers what is still queued once the store is closed.
func (r *pipelineRunner) drain() {
	for {
		select {
		case q := <-r.queue:
			q.done <- scriptResult{err: errStoreClosed}
		default:
			return
		}
	}
}

// exec sends batch as one pipeline of EVALSHAs and answers each caller. A
// script the node does not know yet (NOSCRIPT: after a restart, or a node that
// never saw it) did not run: it is sent again on its own with EVAL, which loads it.
func (r *pipelineRunner) exec(batch []*queuedScript) {
	live := batch[:0:0]
	for _, q := range batch {
		if err := q.ctx.Err(); err != nil {
			q.done <- scriptResult{err: err} // the caller left before it was sent
			continue
		}
		live = append(live, q)
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		q := live[0]
		v, err := runScript(q.ctx, r.c, q.sc, q.call)
		q.done <- scriptResult{v, err}
		return
	}
	ctx, cancel := batchContext(live)
	defer cancel()
	p := r.pipe()
	cmds := make([]*redis.Cmd, len(live))
	for i, q := range live {
		cmds[i] = evalCmd(ctx, q.sc, q.call, false)
		_ = p.Process(ctx, cmds[i])
	}
	p.Exec(ctx) // each command carries its own error
	for i, q := range live {
		v, err := cmds[i].Result()
		if isNoScript(err) {
			v, err = runScript(q.ctx, r.c, q.sc, q.call)
		}
		q.done <- scriptResult{v, err}
	}
}

// batchContext is the context a batch is sent under: no caller's cancellation
// (one caller leaving must not fail the others' scripts), and the latest of
// their deadlines when every caller has one, so a batch cannot outlive them all.
func batchContext(batch []*queuedScript) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, q := range batch {
		d, ok := q.ctx.Deadline()
		if !ok {
			return context.WithoutCancel(batch[0].ctx), func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
}
