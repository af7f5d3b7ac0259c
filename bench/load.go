package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec is one closed-loop run: concurrency workers, each sending its next
// request as soon as the previous one is read to the end.
type loadSpec struct {
	url         string // the chat completions URL
	keys        []string
	work        *workload
	stream      bool
	concurrency int
	warmup      time.Duration
	duration    time.Duration // the measured window, after warmup
	// header is added to every request (X-Mock-* fault and delay headers).
	header http.Header
	// fixedNonce sends every template with the same nonce, so the texts repeat (a
	// warm count cache) instead of being new on every request.
	fixedNonce bool
	// maxRequests, when > 0, stops each worker after that many requests.
	maxRequests int
	// atWindow is called at the start and at the end of the measured window
	// (snapshots of the processes' counters).
	atWindow func(start bool)
}

// sample is one request finished inside the measured window.
type sample struct {
	latency, ttft time.Duration
}

// loadResult is what a run measured.
type loadResult struct {
	samples []sample
	window  time.Duration // the measured window's actual length
	errors  int
	lastErr string
	// For creditgate on the real Redis, run one request at a time: the ledger
	// scripts' calls and execution time inside Redis over the window.
	redisCalls int64
	redisTime  time.Duration
}

func (r *loadResult) rps() float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(len(r.samples)) / r.window.Seconds()
}

// percentile returns the p-th percentile (0 < p ≤ 100) of the latencies or, with
// ttft, of the times to first byte; nearest-rank on sorted values.
func (r *loadResult) percentile(p float64, ttft bool) time.Duration {
	vals := make([]time.Duration, len(r.samples))
	for i, s := range r.samples {
		vals[i] = s.latency
		if ttft {
			vals[i] = s.ttft
		}
	}
	return percentile(vals, p)
}

func percentile(vals []time.Duration, p float64) time.Duration {
	if len(vals) == 0 {
		return 0
	}
	slices.Sort(vals)
	rank := int(p/100*float64(len(vals))+0.5) - 1
	return vals[min(max(rank, 0), len(vals)-1)]
}

// newClient is the load generator's HTTP client: keep-alive connections, one per
// worker, and no compression (the proxies ask the upstream for none either).
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// sequence numbers the requests of the whole process, for nonces.
var sequence atomic.Uint64

// runLoad runs spec and returns the samples finished inside its measured window.
func runLoad(ctx context.Context, client *http.Client, spec loadSpec) loadResult {
	type worker struct {
		samples []sample
		errors  int
		lastErr string
	}
	workers := make([]worker, spec.concurrency)
	var windowStart, windowEnd atomic.Int64 // unix nanoseconds; 0 = not yet
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var t0 time.Time
	if spec.maxRequests > 0 {
		// A counted run measures everything: the window opens before the first
		// request can finish.
		t0 = time.Now()
		windowStart.Store(t0.UnixNano())
	}

	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &workers[i]
			buf := make([]byte, 0, 64<<10)
			readBuf := make([]byte, 32<<10)
			for n := 0; ctx.Err() == nil && (spec.maxRequests == 0 || n < spec.maxRequests); n++ {
				seq := sequence.Add(1)
				if spec.fixedNonce {
					seq = 0
				}
				body := spec.work.fill(buf, i+n, seq)
				start := time.Now()
				ttft, err := doRequest(ctx, client, spec, spec.keys[(i+n)%len(spec.keys)], body, readBuf)
				end := time.Now()
				if err != nil {
					if ctx.Err() != nil {
						return // stopped mid-request: neither a sample nor an error
					}
					w.errors++
					w.lastErr = err.Error()
					continue
				}
				ws, we := windowStart.Load(), windowEnd.Load()
				if ws != 0 && end.UnixNano() >= ws && (we == 0 || end.UnixNano() < we) {
					w.samples = append(w.samples, sample{latency: end.Sub(start), ttft: ttft})
				}
			}
		}()
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var res loadResult
	if spec.maxRequests > 0 {
		<-done
		res.window = time.Since(t0)
	} else {
		sleep(ctx, spec.warmup)
		if spec.atWindow != nil {
			spec.atWindow(true)
		}
		t0 := time.Now()
		windowStart.Store(t0.UnixNano())
		sleep(ctx, spec.duration)
		t1 := time.Now()
		windowEnd.Store(t1.UnixNano())
		if spec.atWindow != nil {
			spec.atWindow(false)
		}
		res.window = t1.Sub(t0)
		stop()
		<-done
	}
	for _, w := range workers {
		res.samples = append(res.samples, w.samples...)
		res.errors += w.errors
		if w.lastErr != "" {
			res.lastErr = w.lastErr
		}
	}
	return res
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

var errShortStream = errors.New("stream ended without data: [DONE]")

// doRequest sends one chat request and reads the answer to the end. It returns the
// time to the first body byte.
func doRequest(ctx context.Context, client *http.Client, spec loadSpec, key string, body, readBuf []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, spec.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range spec.header {
		req.Header[k] = v
	}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var ttft time.Duration
	var head, tail []byte // the first bytes (for errors) and the last (the stream's end)
	total := 0
	for {
		n, err := res.Body.Read(readBuf)
		if n > 0 {
			if total == 0 {
				ttft = time.Since(start)
				head = append(head, readBuf[:min(n, 200)]...)
			}
			total += n
			tail = append(tail[:0], readBuf[max(0, n-32):n]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d: %s", res.StatusCode, head)
	}
	if spec.stream && !bytes.Contains(tail, []byte("[DONE]")) {
		return 0, errShortStream
	}
	return ttft, nil
}
