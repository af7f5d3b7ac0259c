package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
)

// rateLimited makes h's proxy rate-limit with tier-1 at rpm and tpm on a fake
// clock, and returns the clock and a second proxy process's server (its own
// store and limiter on the same Redis and clock).
func rateLimited(t *testing.T, h *harness, rpm, tpm int64) (*testClock, *httptest.Server) {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	limiter := func() billing.RateLimiter {
		s, err := redisstore.New(h.redis.Client, redisstore.Options{Prefix: h.redis.Prefix, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	st := *h.settings.Load()
	st.Policy.Tiers = map[string]billing.Tier{"tier-1": {MaxTopUp: usd("100.00"), MaxBalance: usd("1000.00"), RPM: rpm, TPM: tpm}}
	h.settings.Store(&st)
	o := h.proxy.opts
	o.RateLimiter = limiter()
	p1, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.proxy = p1
	o.RateLimiter = limiter()
	p2, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.inflight.Add(1)
		defer h.inflight.Done()
		p2.ServeHTTP(w, r)
	}))
	t.Cleanup(second.Close)
	return clock, second
}

// TestRateLimitAcrossTwoProcesses: with rpm N on a frozen clock, of 4N
// concurrent requests through two proxies exactly N are admitted, the rest get
// OpenAI's rate-limit 429 with nothing held; 60s/N later exactly one more fits.
// Headers are OpenAI's on plain and streamed answers.
func TestRateLimitAcrossTwoProcesses(t *testing.T) {
	const n = 5
	h := newHarness(t)
	key := h.account("acme", "20.00")
	clock, second := rateLimited(t, h, n, 0)
	servers := []string{h.server.URL, second.URL}

	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	bodies := make(chan []byte, 4*n)
	for i := range 4 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, servers[i%2]+"/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", i%3 == 0, `"max_tokens":10`)))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b := readAll(t, res)
			switch res.StatusCode {
			case http.StatusOK:
				ok.Add(1)
				if res.Header.Get("X-Ratelimit-Limit-Requests") != strconv.Itoa(n) || res.Header.Get("X-Ratelimit-Remaining-Requests") == "" ||
					res.Header.Get("X-Ratelimit-Reset-Requests") == "" || res.Header.Get("X-Ratelimit-Limit-Tokens") != "" {
					t.Errorf("admitted answer's headers %v", res.Header)
				}
			case http.StatusTooManyRequests:
				limited.Add(1)
				bodies <- b
				if res.Header.Get(ReasonHeader) != ReasonRateLimit || res.Header.Get("Retry-After") == "" || res.Header.Get("Retry-After-Ms") == "" ||
					res.Header.Get("X-Should-Retry") != "" || res.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
					t.Errorf("429 headers %v", res.Header)
				}
			default:
				t.Errorf("status %d: %s", res.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(bodies)
	if ok.Load() != n || limited.Load() != 3*n {
		t.Fatalf("%d admitted, %d limited; want %d and %d", ok.Load(), limited.Load(), n, 3*n)
	}
	for b := range bodies {
		var e struct {
			Error struct {
				Message, Type, Code string
				Param               *string
			}
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		want := "Rate limit reached for gpt-4o-mini in organization acme on requests per min (RPM): Limit 5, Used 5, Requested 1. Please try again in 12s."
		if e.Error.Message != want || e.Error.Type != "requests" || e.Error.Code != "rate_limit_exceeded" || e.Error.Param != nil {
			t.Fatalf("429 body %s", b)
		}
	}
	a := h.get("acme")
	usage := 0
	for _, ev := range h.events("acme") {
		if ev.Type == billing.EventUsage {
			usage++
		}
		if ev.Type == billing.EventRelease {
			t.Errorf("a refused request held money: %+v", ev)
		}
	}
	if usage != n || a.Reserved != 0 {
		t.Fatalf("%d usage events, reserved %s; want %d and 0", usage, a.Reserved, n)
	}

	// 12s later one request fits again, through either process, streamed.
	clock.Advance(12 * time.Second)
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", true, ""))
	readAll(t, res)
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Ratelimit-Remaining-Requests") != "0" || res.Header.Get("X-Ratelimit-Reset-Requests") != "1m0s" {
		t.Fatalf("after 12s: %d %v", res.StatusCode, res.Header)
	}
	res = h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""))
	if readAll(t, res); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "12" || res.Header.Get("Retry-After-Ms") != "12000" {
		t.Fatalf("the next one: %d %v", res.StatusCode, res.Header)
	}
}

// TestRateLimitTokensAndKeys: tpm counts the prompt plus max_tokens; a key's own
// lower limit refuses it while another key goes on; a request larger than the
// limit gets OpenAI's "Request too large" with x-should-retry: false; the
// upstream's own x-ratelimit-* headers never reach the app.
func TestRateLimitTokensAndKeys(t *testing.T) {
	h := newHarness(t)
	h.account("acme", "20.00")
	_, limitedSecret, err := h.store.CreateKeyWith(h.ctx, "acme", billing.KeySpec{Name: "slow", RPM: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, freeSecret, err := h.store.CreateKey(h.ctx, "acme", "free")
	if err != nil {
		t.Fatal(err)
	}
	rateLimited(t, h, 100, 1000)
	res := h.post("/v1/chat/completions", limitedSecret, chatBody("gpt-4o-mini", false, `"max_tokens":100`))
	readAll(t, res)
	remaining, _ := strconv.Atoi(res.Header.Get("X-Ratelimit-Remaining-Tokens"))
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Ratelimit-Limit-Requests") != "1" || res.Header.Get("X-Ratelimit-Limit-Tokens") != "1000" ||
		remaining >= 900 || remaining < 850 {
		t.Fatalf("first: %d %v", res.StatusCode, res.Header)
	}
	res = h.post("/v1/chat/completions", limitedSecret, chatBody("gpt-4o-mini", false, `"max_tokens":10`))
	if b := readAll(t, res); res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), "in organization acme for key key_") {
		t.Fatalf("the key's second: %d %s", res.StatusCode, b)
	}
	res = h.post("/v1/chat/completions", freeSecret, chatBody("gpt-4o-mini", false, `"max_tokens":10`))
	if b := readAll(t, res); res.StatusCode != http.StatusOK || res.Header.Get("X-Ratelimit-Limit-Requests") != "100" {
		t.Fatalf("another key: %d %s", res.StatusCode, b)
	}
	res = h.post("/v1/chat/completions", freeSecret, chatBody("gpt-4o-mini", false, `"max_tokens":5000`))
	b := readAll(t, res)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("X-Should-Retry") != "false" || res.Header.Get("Retry-After") != "" ||
		!strings.HasPrefix(string(b), "{\n    \"error\": {\n        \"message\": \"Request too large for gpt-4o-mini in organization acme on tokens per min (TPM): Limit 1000, Requested 50") ||
		!strings.Contains(string(b), `"type": "tokens"`) {
		t.Fatalf("too large: %d %v %s", res.StatusCode, res.Header, b)
	}
}

// TestOfficialGoSDKRetriesARateLimit: the official Go SDK, refused by a rate
// limit, waits the retry-after-ms the 429 gives and succeeds on its retry (the
// fake clock moves by that wait as the SDK waits). That it does not retry
// insufficient_quota needs x-should-retry: false on quota 429s, the limits
// branch's, not asserted here.
func TestOfficialGoSDKRetriesARateLimit(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	clock, _ := rateLimited(t, h, 0, 60_000) // a token per ms
	// Another app of the account spent the minute's tokens.
	if _, err := h.proxy.opts.RateLimiter.RateLimit(h.ctx, billing.RateLimitRequest{Account: "acme", KeyID: "key_other", Tokens: 60_000,
		Tiers: h.settings.Load().Policy.Tiers}); err != nil {
		t.Fatal(err)
	}
	var attempts []int
	var waits []string
	client := openai.NewClient(option.WithBaseURL(h.server.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(2),
		option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			res, err := next(r)
			if err == nil {
				attempts = append(attempts, res.StatusCode)
				if res.StatusCode == http.StatusTooManyRequests {
					ms, _ := strconv.Atoi(res.Header.Get("Retry-After-Ms"))
					waits = append(waits, res.Header.Get("Retry-After-Ms"))
					clock.Advance(time.Duration(ms) * time.Millisecond)
				}
			}
			return res, err
		}))
	c, err := client.Chat.Completions.New(h.ctx, openai.ChatCompletionNewParams{
		Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}, MaxTokens: openai.Int(20),
	})
	if err != nil {
		var apiErr *openai.Error
		errors.As(err, &apiErr)
		t.Fatalf("SDK: %v (attempts %v)", err, attempts)
	}
	if len(attempts) != 2 || attempts[0] != http.StatusTooManyRequests || attempts[1] != http.StatusOK || len(c.Choices) != 1 || waits[0] == "0" {
		t.Fatalf("attempts %v, waits %v, completion %+v", attempts, waits, c)
	}
}
