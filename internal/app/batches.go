package app

import (
	"context"
	"time"

	"github.com/creditgate/creditgate/proxy"
)

// batchPollInterval is how often the batch poller looks at the open batches
// (one proxy per round, the store's lock "batches"): a batch's hold is settled
// at most this long after the batch ends at the upstream.
const batchPollInterval = time.Minute

// batchPoller runs the proxy's batch poller until stop.
type batchPoller struct {
	stop context.CancelFunc
	done chan struct{}
}

// startBatchPoller starts settling ended batches in the background.
func startBatchPoller(p *proxy.Proxy, interval time.Duration) *batchPoller {
	ctx, cancel := context.WithCancel(context.Background())
	b := &batchPoller{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		p.RunBatchPoller(ctx, interval)
	}()
	return b
}

// Stop ends the poller and waits for its round to finish. Stopping a nil
// poller does nothing.
func (b *batchPoller) Stop() {
	if b == nil {
		return
	}
	b.stop()
	<-b.done
}
