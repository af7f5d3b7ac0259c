package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// roundTrips counts what a go-redis client sends: one per command, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// countingEnv is an env whose client counts its round trips.
func countingEnv(t testing.TB, r *testredis.Store) (*env, *roundTrips) {
	rt := &roundTrips{}
	r.Client.AddHook(rt)
	return newEnv(t, r), rt
}

// The proxy's request path costs one round trip to admit (Reserve) and one to settle
// (Settle), once the scripts are loaded: each is a single EVALSHA.
func TestOneRoundTripToReserveAndOneToSettle(t *testing.T) {
	for _, kind := range []string{"redis", "miniredis"} {
		t.Run(kind, func(t *testing.T) {
			r := testredis.Memory(t)
			if kind == "redis" {
				r = testredis.New(t)
			}
			e, rt := countingEnv(t, r)
			e.account(t, "acme", "50.00")
			e.reserve(t, "acme", "hold-warm", usd("0.01"), usd("0.001")) // loads the scripts
			e.settle(t, "acme", "hold-warm", usd("0.005"))
			for i := range 3 {
				hold := fmt.Sprintf("hold-%d", i)
				before := rt.n.Load()
				e.reserve(t, "acme", hold, usd("0.01"), usd("0.001"))
				if n := rt.n.Load() - before; n != 1 {
					t.Errorf("Reserve took %d round trips, want 1", n)
				}
				before = rt.n.Load()
				e.settle(t, "acme", hold, usd("0.005"))
				if n := rt.n.Load() - before; n != 1 {
					t.Errorf("Settle took %d round trips, want 1", n)
				}
			}
		})
	}
}

// BenchmarkReserveSettle: the ledger work of one proxied request, a hold and its
// settlement (two scripts, two round trips), on real Redis and on the embedded
// store; sequential (latency per request) and parallel (throughput, 16 accounts).
//
//	go test ./billing/redisstore -run '^$' -bench ReserveSettle
func BenchmarkReserveSettle(b *testing.B) {
	for _, kind := range []string{"redis", "miniredis"} {
		for _, parallel := range []bool{false, true} {
			name := kind + "/sequential"
			if parallel {
				name = kind + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				r := testredis.Memory(b)
				if kind == "redis" {
					r = testredis.New(b)
					if r.Kind == testredis.KindMemory {
						b.Skip("no real Redis reachable")
					}
				}
				e, rt := countingEnv(b, r)
				const accounts = 16
				for i := range accounts {
					e.account(b, fmt.Sprintf("acct-%d", i), "100.00", "100.00", "100.00")
				}
				var seq atomic.Int64
				one := func() {
					n := seq.Add(1)
					id := fmt.Sprintf("acct-%d", n%accounts)
					hold := fmt.Sprintf("hold-%d", n)
					res, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: 10_000, Minimum: 200, Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL})
					if err != nil || !res.Admitted {
						b.Fatalf("reserve: %+v %v", res, err)
					}
					if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: id, HoldID: hold, Cost: money.Micros(160),
						Usage: billing.Usage{RequestID: hold, KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions",
							PromptTokens: 1000, CompletionTokens: 16, TokenSource: billing.TokenSourceUpstream}}); err != nil {
						b.Fatalf("settle: %v", err)
					}
				}
				one() // load the scripts
				startTrips, startOps := rt.n.Load(), seq.Load()
				b.ReportAllocs()
				b.ResetTimer()
				if parallel {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							one()
						}
					})
				} else {
					for range b.N {
						one()
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(rt.n.Load()-startTrips)/float64(seq.Load()-startOps), "round-trips/op")
			})
		}
	}
}
