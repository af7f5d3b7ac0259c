package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// pipelineProbe records the pipelines a client sends, and can hold the first
// script back until enough others queue behind it, so that a batch forms for
// certain rather than by timing.
type pipelineProbe struct {
	mu      sync.Mutex
	sizes   []int         // scripts per pipeline sent
	single  atomic.Int64  // scripts sent on their own
	holdFor func() bool   // while it reports false, the first script waits
	held    atomic.Bool   // the first script has been held
	release chan struct{} // closed once the first script may go
}

func (p *pipelineProbe) DialHook(next redis.DialHook) redis.DialHook { return next }

func (p *pipelineProbe) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScript(cmd) {
			p.single.Add(1)
			p.wait()
		}
		return next(ctx, cmd)
	}
}

func (p *pipelineProbe) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, c := range cmds {
			if isScript(c) {
				n++
			}
		}
		if n > 0 {
			p.mu.Lock()
			p.sizes = append(p.sizes, n)
			p.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// wait holds the first script until holdFor says enough have queued (at most 10 s).
func (p *pipelineProbe) wait() {
	if p.holdFor == nil || !p.held.CompareAndSwap(false, true) {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for !p.holdFor() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

func isScript(c redis.Cmder) bool {
	n := strings.ToLower(c.Name())
	return n == "evalsha" || n == "eval"
}

func (p *pipelineProbe) largest() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := 0
	for _, n := range p.sizes {
		m = max(m, n)
	}
	return m
}

// pipelinedEnv is an env whose store pipelines with one worker, on a client
// that p watches.
func pipelinedEnv(t *testing.T, r *testredis.Store, p *pipelineProbe, workers int) *env {
	t.Helper()
	r.Client.AddHook(p)
	c := newClock()
	s, err := New(r.Client, Options{Prefix: r.Prefix, Now: c.Now, Pipeline: PipelineOptions{MaxBatch: 64, Workers: workers}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &env{Store: s, clock: c, redis: r, ctx: context.Background()}
}

// Concurrent reserves and settles share pipelines, and the ledger comes out
// exactly as if each had gone alone: every hold settled once, the balance
// debited by the sum of the costs, the audit clean.
func TestPipelinedRequestsAreExact(t *testing.T) {
	eachStore(t, func(t *testing.T, base *env) {
		p := &pipelineProbe{}
		e := pipelinedEnv(t, base.redis, p, 1)
		const accounts, requests = 4, 200
		for i := range accounts {
			e.account(t, fmt.Sprintf("acct-%d", i), "20.00")
		}
		// The first script waits until 20 more have queued behind it.
		p.holdFor = func() bool { return len(e.pipeline.queue) >= 20 }
		var wg sync.WaitGroup
		errs := make(chan error, requests)
		for n := range requests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, hold := fmt.Sprintf("acct-%d", n%accounts), fmt.Sprintf("hold-%d", n)
				res, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: 10_000, Minimum: 200, Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL})
				if err != nil || !res.Admitted || res.Held != 10_000 {
					errs <- fmt.Errorf("reserve %s: %+v %v", hold, res, err)
					return
				}
				if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: id, HoldID: hold, Cost: money.Micros(1000 + n),
					Usage: billing.Usage{RequestID: hold, Model: "gpt-4o-mini", TokenSource: billing.TokenSourceUpstream}}); err != nil {
					errs <- fmt.Errorf("settle %s: %v", hold, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := p.largest(); got < 2 {
			t.Fatalf("largest pipeline carried %d scripts (pipelines %v): no batch formed", got, p.sizes)
		}
		for i := range accounts {
			id := fmt.Sprintf("acct-%d", i)
			var spent money.Micros
			for n := i; n < requests; n += accounts {
				spent += money.Micros(1000 + n)
			}
			a := e.get(t, id)
			if want := usd("20.00") - spent; a.Balance() != want || a.Reserved != 0 {
				t.Errorf("%s: balance %s reserved %s, want %s and 0", id, a.Balance(), a.Reserved, want)
			}
			if r, err := billing.AuditAccount(e.ctx, e.Store, id); err != nil || !r.OK() {
				t.Errorf("%s: audit %+v %v", id, r, err)
			}
		}
		t.Logf("%d pipelines, largest %d; %d scripts alone", len(p.sizes), p.largest(), p.single.Load())
	})
}

// A script the server does not know (after SCRIPT FLUSH or a restart) fails
// with NOSCRIPT inside a pipeline without running; it is sent again, loaded,
// and runs once.
func TestPipelineLoadsUnknownScripts(t *testing.T) {
	r := testredis.Memory(t) // SCRIPT FLUSH on the shared Redis would slow every other test
	p := &pipelineProbe{}
	e := pipelinedEnv(t, r, p, 1)
	e.account(t, "acme", "10.00")
	if err := r.Client.ScriptFlush(e.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p.holdFor = func() bool { return len(e.pipeline.queue) >= 5 }
	var wg sync.WaitGroup
	for n := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "acme", HoldID: fmt.Sprintf("h%d", n), Estimate: 1000, Grace: 0, TTL: time.Minute}); err != nil {
				t.Errorf("reserve h%d: %v", n, err)
			}
		}()
	}
	wg.Wait()
	if got := p.largest(); got < 2 {
		t.Fatalf("no pipeline of 2 or more formed (%v)", p.sizes)
	}
	if a := e.get(t, "acme"); a.Reserved != 6000 {
		t.Errorf("reserved %s after 6 holds of 0.001, want 0.006000: a script ran twice or not at all", a.Reserved)
	}
}

// A caller that leaves (its context ends) gets its context's error; the
// others' scripts in the same batch are not failed for it.
func TestPipelineCallerLeaves(t *testing.T) {
	r := testredis.New(t)
	p := &pipelineProbe{}
	e := pipelinedEnv(t, r, p, 1)
	e.account(t, "acme", "10.00")
	gone, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.Reserve(gone, billing.ReserveRequest{Account: "acme", HoldID: "gone", Estimate: 1000, TTL: time.Minute}); !errors.Is(err, billing.ErrUnavailable) || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("reserve with a cancelled context: %v, want ErrUnavailable for the cancelled context, as without pipelining", err)
	}
	p.holdFor = func() bool { return len(e.pipeline.queue) >= 3 }
	short, cancelShort := context.WithTimeout(e.ctx, 50*time.Millisecond)
	defer cancelShort()
	var wg sync.WaitGroup
	for n := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := e.ctx
			if n == 3 {
				ctx = short // may leave while the first script is held
			}
			_, err := e.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: fmt.Sprintf("h%d", n), Estimate: 1000, TTL: time.Minute})
			if n < 3 && err != nil {
				t.Errorf("reserve h%d: %v", n, err)
			}
		}()
	}
	wg.Wait()
	a := e.get(t, "acme")
	if a.Reserved != 3000 && a.Reserved != 4000 {
		t.Errorf("reserved %s: want the three patient holds, and the impatient one at most once", a.Reserved)
	}
}

func TestPipelineOptions(t *testing.T) {
	r := testredis.Memory(t)
	for _, tt := range []struct {
		o       PipelineOptions
		wantErr string
	}{
		{PipelineOptions{}, ""},
		{PipelineOptions{MaxBatch: 1}, ""}, // off
		{PipelineOptions{MaxBatch: 64, Workers: 8}, ""},
		{PipelineOptions{MaxBatch: maxPipelineBatch + 1}, "batch of at most"},
		{PipelineOptions{MaxBatch: 8, Workers: -1}, "workers from 0"},
	} {
		s, err := New(r.Client, Options{Prefix: r.Prefix, Pipeline: tt.o})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tt.o, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%+v: error %v, want %q", tt.o, err, tt.wantErr)
		}
		if err == nil {
			if (s.pipeline != nil) != tt.o.On() {
				t.Errorf("%+v: pipelining %v, want %v", tt.o, s.pipeline != nil, tt.o.On())
			}
			s.Close()
			s.Close() // twice is harmless
		}
	}
	s, err := New(r.Client, Options{Prefix: r.Prefix, Pipeline: PipelineOptions{MaxBatch: 4}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.GetAccount(context.Background(), "x"); !errors.Is(err, errStoreClosed) {
		t.Errorf("a closed pipelined store answered %v, want %v", err, errStoreClosed)
	}
}
