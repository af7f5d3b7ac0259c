package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/proxy"
)

// TestWithTheProxy runs the real proxy, on real Redis, in front of the mock
// upstream with Metrics as its observer and Redis hook, and checks the metrics
// against the ledger: the money counted is exactly the money charged.
func TestWithTheProxy(t *testing.T) {
	r := testredis.New(t)
	usd := money.MustParse
	pricing, err := metering.NewPricing(map[string]metering.Price{
		"gpt-4o-mini": {Input: usd("0.15"), CachedInput: usd("0.075"), AudioInput: usd("0.15"), Output: usd("0.60"), Reasoning: usd("0.60"), AudioOutput: usd("0.60")},
		"gpt-4":       {Input: usd("30.00"), CachedInput: usd("30.00"), AudioInput: usd("30.00"), Output: usd("60.00"), Reasoning: usd("60.00"), AudioOutput: usd("60.00"), MaxOutputTokens: 8192},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(t, func() *metering.Pricing { return pricing })
	r.Client.AddHook(m.RedisHook())
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	policy := billing.Policy{Grace: usd("0.10"), HoldTTL: 15 * time.Minute, CreditTTL: 24 * time.Hour, DefaultTier: "t",
		Tiers: map[string]billing.Tier{"t": {}}}
	ctx := context.Background()
	if _, err := store.CreateAccount(ctx, "acme", "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TopUp(ctx, policy, billing.TopUpRequest{Account: "acme", GrantID: "g1", Amount: usd("0.50"), Source: billing.SourcePurchase, SkipLimits: true}); err != nil {
		t.Fatal(err)
	}
	_, key, err := store.CreateKey(ctx, "acme", "metrics")
	if err != nil {
		t.Fatal(err)
	}

	mock := mockupstream.New()
	mock.OutputTokens = 1000
	up := httptest.NewServer(mock)
	defer up.Close()
	upURL, _ := url.Parse(up.URL + "/v1")
	settings := &proxy.Settings{Policy: policy, Pricing: pricing, ClampMaxTokens: true, DriftTolerance: 0.10}
	p, err := proxy.New(proxy.Options{Upstream: upURL, Ledger: store, Keys: store, Settings: func() *proxy.Settings { return settings }, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()

	send := func(auth, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	const hello = `"messages":[{"role":"user","content":"Hello!"}]`
	if s := send(key, `{"model":"gpt-4o-mini","max_tokens":50,`+hello+`}`); s != 200 {
		t.Fatalf("plain: %d", s)
	}
	if s := send(key, `{"model":"gpt-4o-mini","max_tokens":50,"stream":true,`+hello+`}`); s != 200 {
		t.Fatalf("stream: %d", s)
	}
	if s := send("sk-cg-not-a-key", `{"model":"gpt-4o-mini",`+hello+`}`); s != 401 {
		t.Fatalf("bad key: %d", s)
	}
	served4 := 0
	for ; served4 < 100; served4++ { // $0.06 a request: the $0.50 runs out
		if s := send(key, `{"model":"gpt-4","max_tokens":1000,`+hello+`}`); s == http.StatusTooManyRequests {
			break
		} else if s != 200 {
			t.Fatalf("gpt-4: %d", s)
		}
	}

	// The spend counted is the cost the ledger booked, to the micro-dollar.
	page, err := store.Events(ctx, "acme", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	booked := map[string]money.Micros{}
	for _, ev := range page.Events {
		if ev.Type == billing.EventUsage {
			booked[ev.Model] += ev.Cost
		}
	}
	for model, cost := range booked {
		if got := sample(t, m.Gatherer(), "creditgate_spend_micro_usd_total", map[string]string{"model": model}); got != float64(cost) {
			t.Errorf("spend %s: metrics %v, ledger %d", model, got, cost)
		}
	}
	chat := "/v1/chat/completions"
	for _, s := range []series{
		{"creditgate_requests_total", map[string]string{"endpoint": chat, "model": "gpt-4o-mini", "status": "200"}, 2},
		{"creditgate_requests_total", map[string]string{"endpoint": chat, "model": "gpt-4", "status": "200"}, float64(served4)},
		{"creditgate_requests_total", map[string]string{"endpoint": chat, "model": "gpt-4", "status": "429"}, 1},
		{"creditgate_requests_total", map[string]string{"endpoint": chat, "model": "none", "status": "401"}, 1},
		{"creditgate_tokens_total", map[string]string{"model": "gpt-4o-mini", "class": "output", "source": "upstream"}, 100},
		{"creditgate_time_to_first_token_seconds", map[string]string{"endpoint": chat, "model": "gpt-4o-mini", "stream": "true"}, 1},
		{"creditgate_upstream_duration_seconds", map[string]string{"endpoint": chat, "model": "gpt-4"}, float64(served4)},
		{"creditgate_holds_open", nil, 0},
	} {
		if got := sample(t, m.Gatherer(), s.name, s.labels); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	var quota float64
	for _, reason := range []string{billing.ReasonEmpty, billing.ReasonInsufficient} {
		quota += sample(t, m.Gatherer(), "creditgate_quota_exceeded_total", map[string]string{"reason": reason})
	}
	if quota != 1 {
		t.Errorf("429s counted by reason: %v, want 1", quota)
	}
	if got := sample(t, m.Gatherer(), "creditgate_redis_command_duration_seconds", map[string]string{"command": "evalsha"}); got < float64(2*(served4+2)) {
		t.Errorf("%v ledger scripts timed for %d requests (a reserve and a settle each)", got, served4+2)
	}
	if served4 < 5 {
		t.Errorf("only %d gpt-4 requests before the 429", served4)
	}
}
