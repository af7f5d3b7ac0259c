package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/money"
)

// limitedKeys is the real key store with limits laid over the keys it looks up,
// by key id: keys' limits are stored by the key admin API (not this package's
// business), and the proxy reads them from the looked-up key.
type limitedKeys struct {
	billing.KeyStore
	mu     sync.Mutex
	limits map[string]func(*billing.APIKey)
}

func (l *limitedKeys) LookupKey(ctx context.Context, h billing.KeyHash) (billing.APIKey, error) {
	k, err := l.KeyStore.LookupKey(ctx, h)
	l.mu.Lock()
	defer l.mu.Unlock()
	if set := l.limits[k.ID]; err == nil && set != nil {
		set(&k)
	}
	return k, err
}

// limitedHarness is a harness whose keys may carry limits (limitedKeys).
func limitedHarness(t *testing.T) (*harness, *limitedKeys) {
	t.Helper()
	lk := &limitedKeys{limits: map[string]func(*billing.APIKey){}}
	h := newHarness(t, func(o *Options) {
		lk.KeyStore = o.Keys
		o.Keys = lk
		o.KeyUsage = o.Ledger.(billing.KeyUsageReader)
	})
	return h, lk
}

// limitedKey makes a key of account acct (created with topups when new) with
// set applied to it at every lookup.
func (h *harness) limitedKey(lk *limitedKeys, acct string, set func(*billing.APIKey), topups ...string) (id, secret string) {
	h.t.Helper()
	if _, err := h.store.GetAccount(h.ctx, acct); err != nil {
		h.account(acct, topups...)
	}
	k, secret, err := h.store.CreateKey(h.ctx, acct, "limited")
	if err != nil {
		h.t.Fatal(err)
	}
	lk.mu.Lock()
	lk.limits[k.ID] = set
	lk.mu.Unlock()
	return k.ID, secret
}

type openAIError struct {
	Error struct {
		Message, Type string
		Param, Code   *string
	}
}

// The limit 429s: OpenAI's error shape with their own code, the reason header,
// x-should-retry: false and no retry-after; nothing held, nothing booked.
func TestLimit429s(t *testing.T) {
	now := time.Now().UTC()
	nextDay := billing.PeriodsOf(now).Next(billing.LimitDaily).Format(time.RFC3339)
	nextMonth := billing.PeriodsOf(now).Next(billing.LimitMonthly).Format(time.RFC3339)
	cases := []struct {
		name    string
		key     func(*billing.APIKey)
		account *billing.SpendLimit
		tier    money.Micros // the tier's monthly usage limit
		code    string
		reason  string
		message string
	}{
		{name: "key limit, never resets", key: func(k *billing.APIKey) { k.Limit = usd("0.001") },
			code: "key_limit_exceeded", reason: "key_limit", message: "This API key reached its spend limit of $0.001."},
		{name: "daily key limit", key: func(k *billing.APIKey) { k.Limit, k.LimitReset = usd("0.01"), billing.LimitDaily },
			code: "key_limit_exceeded", reason: "key_limit", message: "This API key reached its daily spend limit of $0.01; it resets at " + nextDay + "."},
		{name: "account's monthly spend limit", account: &billing.SpendLimit{Monthly: usd("0.001")},
			code: "spend_limit_exceeded", reason: "spend_limit", message: "This account reached its monthly spend limit; it resets at " + nextMonth + "."},
		{name: "tier's monthly usage limit", tier: usd("0.001"),
			code: "spend_limit_exceeded", reason: "spend_limit", message: "This account reached its monthly spend limit; it resets at " + nextMonth + "."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, lk := limitedHarness(t)
			if c.tier > 0 {
				st := *h.settings.Load()
				st.Policy.Tiers = map[string]billing.Tier{"tier-1": {MaxTopUp: usd("100.00"), MaxBalance: usd("1000.00"), MonthlyUsageLimit: c.tier}}
				h.settings.Store(&st)
			}
			set := c.key
			if set == nil {
				set = func(*billing.APIKey) {}
			}
			_, key := h.limitedKey(lk, "acme", set, "20.00")
			if c.account != nil {
				if _, err := h.store.UpdateAccount(h.ctx, "acme", billing.AccountUpdate{SpendLimit: c.account}); err != nil {
					t.Fatal(err)
				}
			}
			res := h.post("/v1/chat/completions", key, chatBody("dear", false, `"max_tokens":16`))
			body := readAll(t, res)
			if res.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			var e openAIError
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			if e.Error.Type != "insufficient_quota" || e.Error.Code == nil || *e.Error.Code != c.code || e.Error.Param != nil || e.Error.Message != c.message {
				t.Fatalf("429 body %s, want code %s and message %q", body, c.code, c.message)
			}
			if res.Header.Get(ReasonHeader) != c.reason || res.Header.Get(ShouldRetryHeader) != "false" || res.Header.Get("Retry-After") != "" {
				t.Fatalf("429 headers %v, want %s %s, %s false, no Retry-After", res.Header, ReasonHeader, c.reason, ShouldRetryHeader)
			}
			if a := h.get("acme"); a.Reserved != 0 || a.Totals.Usage != 0 || len(h.mock.Requests()) != 0 {
				t.Fatalf("a refused request held %s, booked %s, reached the upstream %d times", a.Reserved, a.Totals.Usage, len(h.mock.Requests()))
			}
		})
	}
}

// A key limit that pays for less than the request may cost clamps its output
// cap, as the balance does; GET /v1/key then reports the key and its usage.
func TestKeyLimitClampsAndGetKeyReports(t *testing.T) {
	h, lk := limitedHarness(t)
	// "dear": the prompt costs about $0.02, each output token $0.002.
	limit := usd("0.03")
	id, key := h.limitedKey(lk, "acme", func(k *billing.APIKey) {
		k.Limit, k.LimitReset, k.Models, k.RPM = usd("0.03"), billing.LimitMonthly, []string{"dear"}, 60
	}, "20.00")
	res := h.post("/v1/chat/completions", key, chatBody("dear", false, `"max_tokens":16`))
	body := readAll(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	var sent struct {
		MaxTokens int64 `json:"max_tokens"`
	}
	if err := json.Unmarshal(h.mock.Requests()[0].Body, &sent); err != nil || sent.MaxTokens <= 0 || sent.MaxTokens >= 16 {
		t.Fatalf("upstream max_tokens %d (%v), want clamped below 16", sent.MaxTokens, err)
	}
	a := h.get("acme")
	if a.Totals.Usage <= 0 || a.Reserved != 0 {
		t.Fatalf("account %+v after one request", a)
	}
	spent := a.Totals.Usage

	req, _ := http.NewRequest(http.MethodGet, h.server.URL+"/v1/key", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	gres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	gbody := readAll(t, gres)
	var got struct {
		ID, Name       string
		Limit          *money.Micros
		LimitRemaining *money.Micros `json:"limit_remaining"`
		LimitReset     string        `json:"limit_reset"`
		Usage          struct{ Daily, Weekly, Monthly, Total money.Micros }
		ExpiresAt      *time.Time `json:"expires_at"`
		Models         []string
		RPM, TPM       int64
	}
	if err := json.Unmarshal(gbody, &got); err != nil || gres.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/key %d: %s %v", gres.StatusCode, gbody, err)
	}
	left := max(0, limit-spent)
	if got.ID != id || got.Name != "limited" || got.Limit == nil || *got.Limit != limit || got.LimitRemaining == nil || *got.LimitRemaining != left ||
		got.LimitReset != "monthly" || got.Usage.Daily != spent || got.Usage.Weekly != spent || got.Usage.Monthly != spent || got.Usage.Total != spent ||
		got.ExpiresAt != nil || len(got.Models) != 1 || got.Models[0] != "dear" || got.RPM != 60 || got.TPM != 0 {
		t.Fatalf("GET /v1/key: %s; want the key with %s spent", gbody, spent)
	}
	for _, field := range []string{`"limit"`, `"limit_remaining"`, `"limit_reset"`, `"usage"`, `"daily"`, `"weekly"`, `"monthly"`, `"total"`, `"expires_at"`, `"models"`, `"rpm"`, `"tpm"`} {
		if !strings.Contains(string(gbody), field) {
			t.Fatalf("GET /v1/key lacks %s: %s", field, gbody)
		}
	}

	// A key without a limit: limit and limit_remaining are null.
	_, plain := h.limitedKey(lk, "acme", func(*billing.APIKey) {})
	req.Header.Set("Authorization", "Bearer "+plain)
	if gres, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	gbody = readAll(t, gres)
	if !strings.Contains(string(gbody), `"limit": null`) || !strings.Contains(string(gbody), `"limit_remaining": null`) || !strings.Contains(string(gbody), `"limit_reset": "never"`) {
		t.Fatalf("GET /v1/key of an unlimited key: %s", gbody)
	}
	// Without a key: 401, as every data-plane route.
	req.Header.Del("Authorization")
	if gres, err = http.DefaultClient.Do(req); err != nil || gres.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/key without a key: %v %v", gres.StatusCode, err)
	}
	readAll(t, gres)
}

// TestKeyLimitAcrossTwoProcesses sends 600 concurrent requests through two
// proxies, each with its own store, on one key with a small limit (a
// fraction of what the requests would cost): the key's spend stays within its
// limit plus what requests cost beyond their holds, the ledger is exact (the
// audit passes, every answered request booked once), nothing stays held.
func TestKeyLimitAcrossTwoProcesses(t *testing.T) {
	h, lk := limitedHarness(t)
	const n = 600
	limit := usd("1.00") // "dear" requests of 16 tokens cost about $0.05: ~20 fit
	id, key := h.limitedKey(lk, "acme", func(k *billing.APIKey) { k.Limit, k.LimitReset = limit, billing.LimitDaily }, "100.00")
	o := h.proxy.opts
	s2, err := redisstore.New(h.redis.Client, redisstore.Options{Prefix: h.redis.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	o.Ledger, o.KeyUsage = s2, s2
	o.Keys = &limitedKeys{KeyStore: s2, limits: lk.limits}
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
	servers := []string{h.server.URL, second.URL}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	status := make([]int, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stream := i%2 == 1
			extra := `"max_tokens":16`
			if stream {
				extra += `,"stream_options":{"include_usage":true}`
			}
			req, _ := http.NewRequest(http.MethodPost, servers[i%2]+"/v1/chat/completions", strings.NewReader(chatBody("dear", stream, extra)))
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			readAll(t, res)
			status[i], ids[i] = res.StatusCode, res.Header.Get(RequestIDHeader)
			if res.StatusCode == http.StatusTooManyRequests && (res.Header.Get(ReasonHeader) != "key_limit" || res.Header.Get(ShouldRetryHeader) != "false") {
				t.Errorf("429 headers %v", res.Header)
			}
		}()
	}
	close(start)
	wg.Wait()
	h.inflight.Wait()

	usage := map[string]billing.Event{}
	for _, ev := range h.events("acme") {
		if ev.Type == billing.EventUsage {
			if _, dup := usage[ev.RequestID]; dup {
				t.Fatalf("request %s booked twice", ev.RequestID)
			}
			usage[ev.RequestID] = ev
		}
	}
	var ok, refused int
	var spent, slack money.Micros
	for i, st := range status {
		switch st {
		case http.StatusOK:
			ok++
			ev, found := usage[ids[i]]
			if !found {
				t.Fatalf("answered request %s has no usage event", ids[i])
			}
			held, err := h.redis.Client.HGet(h.ctx, h.redis.Prefix+"{acct:acme}:hold:"+ids[i], "held").Result()
			if err != nil {
				t.Fatalf("hold record of %s: %v", ids[i], err)
			}
			spent += ev.Cost
			heldMicros, err := strconv.ParseInt(held, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			slack += max(0, ev.Cost-money.Micros(heldMicros))
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("status %d", st)
		}
	}
	if ok == 0 || refused == 0 || len(usage) != ok {
		t.Fatalf("%d answered, %d refused, %d usage events: the limit should run out mid-test", ok, refused, len(usage))
	}
	u, err := h.store.KeyUsage(h.ctx, "acme", id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if u.Daily != spent || u.Total != spent {
		t.Fatalf("key usage %+v, the usage events sum to %s", u, spent)
	}
	if spent > limit+slack {
		t.Fatalf("key spent %s past its limit %s + clamp slack %s", spent, limit, slack)
	}
	if rec, err := h.redis.Client.HGet(h.ctx, h.redis.Prefix+"{acct:acme}:kuse", id).Result(); err != nil || !strings.HasPrefix(rec, "0 ") {
		t.Fatalf("key usage record %q (%v): the key's reserved should be back to 0", rec, err)
	}
	a := h.get("acme")
	if a.Reserved != 0 || a.Totals.Usage != spent || a.Balance() != usd("100.00")-spent {
		t.Fatalf("account %+v; answered requests cost %s", a, spent)
	}
	rep, err := billing.AuditAccount(h.ctx, h.store, "acme")
	if err != nil || !rep.OK() {
		t.Fatalf("audit: %+v %v", rep.Problems, err)
	}
	t.Logf("%d answered, %d refused (key_limit); key spent %s of %s (clamp slack %s)", ok, refused, spent, limit, slack)
}

// The official Go SDK raises a key limit's 429 after one request (x-should-retry:
// false), with its code.
func TestOfficialGoSDKDoesNotRetryKeyLimit(t *testing.T) {
	h, lk := limitedHarness(t)
	_, key := h.limitedKey(lk, "acme", func(k *billing.APIKey) { k.Limit, k.LimitReset = 1, billing.LimitWeekly }, "20.00")
	client, attempts := countingSDK(h.server.URL, key)
	_, err := client.Chat.Completions.New(h.ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Code != "key_limit_exceeded" || apiErr.Type != "insufficient_quota" {
		t.Fatalf("err = %v, want the key limit's 429", err)
	}
	if n := attempts.Load(); n != 1 {
		t.Fatalf("the SDK sent %d requests, want 1", n)
	}
}

// An account's monthly spend limit reached through requests: each is held
// within what is left (the last ones clamped), then the 429; alert_at queued
// one spend_limit.alert notice on the way.
func TestSpendLimitReachedAndAlertedOnce(t *testing.T) {
	h := newHarness(t)
	st := *h.settings.Load()
	st.Triggers = billing.Triggers{Notices: true}
	h.settings.Store(&st)
	key := h.account("acme", "20.00")
	limit := usd("0.20")
	if _, err := h.store.UpdateAccount(h.ctx, "acme", billing.AccountUpdate{SpendLimit: &billing.SpendLimit{Monthly: limit, AlertAt: usd("0.10")}}); err != nil {
		t.Fatal(err)
	}
	var answered int
	for range 20 {
		res := h.post("/v1/chat/completions", key, chatBody("dear", false, `"max_tokens":16`))
		body := readAll(t, res)
		if res.StatusCode == http.StatusTooManyRequests {
			if res.Header.Get(ReasonHeader) != "spend_limit" || !strings.Contains(string(body), `"spend_limit_exceeded"`) {
				t.Fatalf("429 %v %s", res.Header, body)
			}
			break
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
		answered++
	}
	a := h.get("acme")
	if answered < 2 || answered == 20 || a.Totals.Usage > limit || a.Reserved != 0 {
		t.Fatalf("%d answered, usage %s of the %s limit, reserved %s", answered, a.Totals.Usage, limit, a.Reserved)
	}
	claimed, _, err := h.store.ClaimNotices(h.ctx, "acme", nil, time.Minute, 5)
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, n := range claimed {
		if n.Type == billing.NoticeSpendAlert {
			alerts++
		}
	}
	if alerts != 1 {
		t.Fatalf("%d spend_limit.alert notices among %+v, want 1", alerts, claimed)
	}
	t.Logf("%d answered, usage %s of %s", answered, a.Totals.Usage, limit)
}

// End to end through the key store, with no stand-in: a limit stored with the
// key (as POST …/keys and PATCH …/keys/{id} store it) is what the reserve
// script charges against, and raising it by UpdateKey lets the key go on.
func TestStoredKeyLimitIsEnforced(t *testing.T) {
	h := newHarness(t)
	h.account("acme", "20.00")
	k, secret, err := h.store.CreateKeyWith(h.ctx, "acme", billing.KeySpec{Name: "capped", Limit: usd("0.0001"), LimitReset: billing.LimitDaily})
	if err != nil {
		t.Fatal(err)
	}
	res := h.post("/v1/chat/completions", secret, chatBody("dear", false, `"max_tokens":16`))
	body := readAll(t, res)
	var e openAIError
	if res.StatusCode != http.StatusTooManyRequests || json.Unmarshal(body, &e) != nil || e.Error.Code == nil || *e.Error.Code != "key_limit_exceeded" {
		t.Fatalf("a key limited to $0.0001: status %d: %s; want 429 key_limit_exceeded", res.StatusCode, body)
	}
	higher := usd("5.00")
	if _, err := h.store.UpdateKey(h.ctx, "acme", k.ID, billing.KeyUpdate{Limit: &higher}); err != nil {
		t.Fatal(err)
	}
	// The harness caches no key (KeyCacheTTL 0): the next lookup reads the change.
	res = h.post("/v1/chat/completions", secret, chatBody("dear", false, `"max_tokens":16`))
	if body := readAll(t, res); res.StatusCode != http.StatusOK {
		t.Fatalf("after raising the limit: status %d: %s", res.StatusCode, body)
	}
}
