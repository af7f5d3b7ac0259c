package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// The proxy's benchmarks run a whole exchange in one process, over real HTTP: the
// client, the proxy, the mock upstream and (on the real Redis when reachable) the
// ledger. ns/op is the latency of one request at a time and allocs/op counts all
// three; the harness (go run ./bench) measures each component in its own process.
// The prompts repeat, so the count caches of the proxy and of the mock hit: the
// tokenizer has benchmarks of its own (metering).

// redisRoundTrips counts the round trips a go-redis client completed: one per
// command, one per pipeline.
type redisRoundTrips struct{ n atomic.Int64 }

func (c *redisRoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *redisRoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		c.n.Add(1)
		return err
	}
}

func (c *redisRoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		c.n.Add(1)
		return err
	}
}

type benchEnv struct {
	server *httptest.Server
	key    string
	trips  *redisRoundTrips
	store  *redisstore.Store
	kind   testredis.Kind
}

func newBenchEnv(t testing.TB) *benchEnv {
	t.Helper()
	r := testredis.New(t)
	trips := &redisRoundTrips{}
	r.Client.AddHook(trips)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	mock := mockupstream.New()
	mock.APIKey = upstreamKey
	mock.MaxRecorded = 1
	upstream := httptest.NewServer(mock)
	t.Cleanup(upstream.Close)
	var settings atomic.Pointer[Settings]
	settings.Store(&Settings{Policy: testPolicy, Pricing: testPricing(t), ClampMaxTokens: true, DriftTolerance: 0.10})
	u, _ := url.Parse(upstream.URL + "/v1")
	p, err := New(Options{Upstream: u, UpstreamKey: upstreamKey, Ledger: store, Keys: store, Settings: settings.Load,
		Logger: zap.NewNop(), Timeout: 10 * time.Second, KeyCacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	server := httptest.NewServer(p)
	t.Cleanup(server.Close)

	ctx := context.Background()
	if _, err := store.CreateAccount(ctx, "bench", "tier-1"); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := store.TopUp(ctx, testPolicy, billing.TopUpRequest{Account: "bench", GrantID: billing.NewID("grant_"), Amount: usd("100.00")}); err != nil {
			t.Fatal(err)
		}
	}
	_, key, err := store.CreateKey(ctx, "bench", "bench")
	if err != nil {
		t.Fatal(err)
	}
	return &benchEnv{server: server, key: key, trips: trips, store: store, kind: r.Kind}
}

// benchBody is a chat request of about tokens prompt tokens (o200k_base).
func benchBody(tokens int, stream bool) []byte {
	const sentence = " The proxy counts the prompt, reserves the worst case, forwards the call and settles what the upstream reports." // 20 tokens
	var msgs []string
	for left := tokens; left > 0; left -= 400 {
		msgs = append(msgs, fmt.Sprintf(`{"role":"user","content":%q}`, strings.Repeat(sentence, max(1, min(left, 400)/20))))
	}
	s := `{"model":"gpt-4o-mini","messages":[` + strings.Join(msgs, ",") + `]`
	if stream {
		s += `,"stream":true`
	}
	return []byte(s + "}")
}

// do sends one request and reads the answer to the end.
func (e *benchEnv) do(t testing.TB, client *http.Client, body []byte) {
	req, _ := http.NewRequest(http.MethodPost, e.server.URL+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v: %s", res.StatusCode, err, data)
	}
}

// Admitting and settling a request costs one Redis round trip each; the key lookup
// is cached.
func TestRedisRoundTripsPerRequest(t *testing.T) {
	e := newBenchEnv(t)
	client := &http.Client{}
	for _, stream := range []bool{false, true} {
		body := benchBody(100, stream)
		e.do(t, client, body) // loads the scripts and caches the key
		const requests = 5
		before := e.trips.n.Load()
		for range requests {
			e.do(t, client, body)
		}
		// The settlement runs after the last byte is written: wait for it.
		deadline := time.Now().Add(5 * time.Second)
		for e.trips.n.Load()-before < 2*requests && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // anything beyond the expected would show up here
		if n := e.trips.n.Load() - before; n != 2*requests {
			t.Errorf("stream=%v: %d Redis round trips for %d requests, want %d (a reserve and a settle each)", stream, n, requests, 2*requests)
		}
	}
}

// BenchmarkProxy: one request at a time through the proxy (plain and streamed, three
// prompt sizes), with the Redis round trips per request.
//
//	go test ./proxy -run '^$' -bench Proxy -benchtime 2s
func BenchmarkProxy(b *testing.B) {
	e := newBenchEnv(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for _, stream := range []bool{false, true} {
		for _, tokens := range []int{100, 1000, 8000} {
			mode := "plain"
			if stream {
				mode = "stream"
			}
			b.Run(fmt.Sprintf("%s/%d", mode, tokens), func(b *testing.B) {
				body := benchBody(tokens, stream)
				e.do(b, client, body)
				before := e.trips.n.Load()
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					e.do(b, client, body)
				}
				b.StopTimer()
				time.Sleep(10 * time.Millisecond) // the last settlement
				b.ReportMetric(float64(e.trips.n.Load()-before)/float64(b.N), "redis-round-trips/op")
			})
		}
	}
}
