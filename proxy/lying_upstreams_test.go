package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/metrics"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/proxy"
)

// The overdraft bound holds whatever the upstream does. For each broken or lying
// upstream of the mock (one that writes ten times the cap it was sent, one that
// reports ten times its usage, both, one that hangs mid-stream, one that cuts its
// bodies mid-way, one that answers an HTML page), 49 concurrent requests of every
// metered kind (plain, streamed with and without usage, n = 2, completions,
// responses), then two without a cap that the clamp lowers, run through the real
// proxy on real Redis against one $1.00 account with $0.50 of grace, at a price
// that spends it in some forty requests. Then: the balance is at least −grace, nothing stays
// reserved, the audit passes; what the upstreams claimed beyond what the requests
// could cost is on the usage events and, to the micro-dollar, in the metric; the
// streams cut at their cap end with finish_reason length or response.incomplete,
// each choice within its cap; an HTML page is a 502 and costs nothing.
func TestLyingUpstreamsKeepTheOverdraftBound(t *testing.T) {
	for _, mode := range []struct {
		name    string
		headers map[string]string
		timeout time.Duration
		excess  bool // the upstream claims more than the requests could cost
		capped  bool // the streams are cut at their caps
		broken  bool // every answer breaks off: billed for what was relayed, locally
		html    bool
	}{
		{name: "ignores the cap", headers: map[string]string{"X-Mock-Ignore-Cap": "10"}, excess: true, capped: true},
		{name: "inflates usage", headers: map[string]string{"X-Mock-Inflate-Usage": "10"}, excess: true},
		{name: "ignores the cap and inflates usage", headers: map[string]string{"X-Mock-Ignore-Cap": "10", "X-Mock-Inflate-Usage": "10"}, excess: true, capped: true},
		{name: "hangs mid-stream", headers: map[string]string{"X-Mock-Stall-After": "4"}, timeout: 1500 * time.Millisecond, broken: true},
		{name: "cuts mid-body", headers: map[string]string{"X-Mock-Cut-Body": "400"}, broken: true},
		{name: "answers HTML", headers: map[string]string{"X-Mock-HTML": "1"}, html: true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			st := newStack(t, mode.timeout)
			outs := st.storm(t, mode.headers)
			grace := st.policy.Grace
			a, err := st.store.GetAccount(st.ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if a.Balance() < -grace || a.Reserved != 0 {
				t.Fatalf("balance %s (grace %s), reserved %s", a.Balance(), grace, a.Reserved)
			}
			if r, err := billing.AuditAccount(st.ctx, st.store, "acme"); err != nil || !r.OK() {
				t.Fatalf("audit: %+v %v", r.Problems, err)
			}
			page, err := st.store.Events(st.ctx, "acme", "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			var usage, excessEvents int
			var excess money.Micros
			for _, ev := range page.Events {
				if ev.Type == billing.EventUsage {
					if mode.broken && ev.TokenSource != billing.TokenSourceLocal {
						t.Fatalf("a broken answer billed from %s: %+v", ev.TokenSource, ev)
					}
					usage++
					excess += ev.Excess
					if ev.Excess > 0 {
						excessEvents++
					}
				}
			}
			if got := st.metric(t, "creditgate_upstream_excess_micro_usd_total"); got != float64(excess) {
				t.Fatalf("metric excess %v, ledger %s", got, excess)
			}
			if mode.excess && excessEvents == 0 || !mode.excess && excess != 0 {
				t.Fatalf("%d usage events with excess (%s in all)", excessEvents, excess)
			}
			var ok, refused, failed int
			for _, o := range outs {
				switch {
				case o.status == http.StatusTooManyRequests:
					refused++
				case mode.html:
					if o.status != http.StatusBadGateway && !o.invalidEvent || o.err != nil {
						t.Fatalf("%s: %d %v %q, want 502 upstream_invalid_response", o.call.name, o.status, o.err, o.body)
					}
					failed++
				case o.status == http.StatusOK && o.err == nil:
					ok++
					if mode.capped {
						o.checkCapped(t)
					}
				default:
					failed++
				}
			}
			if mode.html && (usage != 0 || a.Balance() != money.MustParse("1.00")) {
				t.Fatalf("an HTML answer was charged: %d usage events, balance %s", usage, a.Balance())
			}
			if mode.capped && ok < 20 || mode.broken && (ok != 0 || usage == 0) || refused == len(outs) {
				t.Fatalf("%d answered, %d refused, %d failed, %d usage events", ok, refused, failed, usage)
			}
			t.Logf("%d answered, %d refused (429), %d failed; balance %s; %d usage events, %d with excess (%s)",
				ok, refused, failed, a.Balance(), usage, excessEvents, excess)
		})
	}
}

// stack is a proxy with metrics on real Redis in front of the mock, one account.
type stack struct {
	ctx     context.Context
	store   *redisstore.Store
	metrics *metrics.Metrics
	policy  billing.Policy
	server  *httptest.Server
	key     string
	tok     metering.Tokenizer
	wg      sync.WaitGroup // running handlers: each settles after its app read the last byte
}

func newStack(t *testing.T, timeout time.Duration) *stack {
	t.Helper()
	usd := money.MustParse
	st := &stack{ctx: context.Background(), policy: billing.Policy{Grace: usd("0.50"), HoldTTL: 15 * time.Minute, CreditTTL: 24 * time.Hour,
		DefaultTier: "t", Tiers: map[string]billing.Tier{"t": {}}}}
	r := testredis.New(t)
	var err error
	if st.store, err = redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix}); err != nil {
		t.Fatal(err)
	}
	// $200 per 1M prompt tokens, $2,000 per 1M output tokens: 16 output tokens are
	// $0.032, so $1.50 pays for about forty requests.
	pricing, err := metering.NewPricing(map[string]metering.Price{"lux": {Input: usd("200"), CachedInput: usd("100"), AudioInput: usd("200"),
		Output: usd("2000"), Reasoning: usd("2000"), AudioOutput: usd("2000"), MaxOutputTokens: 2048, Encoding: metering.O200kBase}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.metrics, err = metrics.New(metrics.Options{Pricing: func() *metering.Pricing { return pricing }, NoProcessMetrics: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.store.CreateAccount(st.ctx, "acme", "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.store.TopUp(st.ctx, st.policy, billing.TopUpRequest{Account: "acme", GrantID: "g1", Amount: usd("1.00"), Source: billing.SourcePurchase, SkipLimits: true}); err != nil {
		t.Fatal(err)
	}
	if _, st.key, err = st.store.CreateKey(st.ctx, "acme", "k"); err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(mockupstream.New())
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL + "/v1")
	settings := &proxy.Settings{Policy: st.policy, Pricing: pricing, ClampMaxTokens: true, DriftTolerance: 0.10}
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	p, err := proxy.New(proxy.Options{Upstream: u, Ledger: st.store, Keys: st.store, Settings: func() *proxy.Settings { return settings },
		Observer: st.metrics, Timeout: timeout, KeyCacheTTL: time.Minute, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	st.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st.wg.Add(1)
		defer st.wg.Done()
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(st.server.Close)
	if st.tok, err = metering.TokenizerFor(metering.O200kBase); err != nil {
		t.Fatal(err)
	}
	return st
}

// call is one kind of request of the storm.
type call struct {
	name, path, body string
	stream, usage    bool
	choices          int
	cap              int // the output cap per choice it sets; 0: none (the clamp sets one)
	responses        bool
}

var calls = func() []call {
	chat := func(extra string) string {
		return `{"model":"lux","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Tell me about the sea."}],` + extra + `}`
	}
	return []call{
		{name: "chat", path: "/v1/chat/completions", body: chat(`"max_tokens":16`), choices: 1, cap: 16},
		{name: "chat stream", path: "/v1/chat/completions", body: chat(`"stream":true,"max_tokens":16`), stream: true, choices: 1, cap: 16},
		{name: "chat stream with usage", path: "/v1/chat/completions", body: chat(`"stream":true,"max_completion_tokens":16,"stream_options":{"include_usage":true}`),
			stream: true, usage: true, choices: 1, cap: 16},
		{name: "chat stream n=2", path: "/v1/chat/completions", body: chat(`"stream":true,"n":2,"max_tokens":8`), stream: true, choices: 2, cap: 8},
		{name: "completions stream", path: "/v1/completions", body: `{"model":"lux","prompt":"Once upon a time","stream":true,"max_tokens":16}`,
			stream: true, choices: 1, cap: 16},
		{name: "responses stream", path: "/v1/responses", body: `{"model":"lux","input":"Tell me about the sea.","stream":true,"max_output_tokens":16}`,
			stream: true, choices: 1, cap: 16, responses: true},
		{name: "responses", path: "/v1/responses", body: `{"model":"lux","input":"Tell me about the sea.","max_output_tokens":16}`,
			choices: 1, cap: 16, responses: true},
	}
}()

// outcome is what the app saw of one request.
type outcome struct {
	call         call
	status       int
	err          error // reading the answer failed
	body         []byte
	invalidEvent bool // a stream's one event is the upstream_invalid_response error
	text         map[int]string
	finishes     map[int][]string
	lastEvent    string // a stream's last event: "[DONE]" or a responses event type
	tok          metering.Tokenizer
}

// uncapped is a request without an output cap: the clamp lowers it to what the
// balance pays for, holding all of it (sent after the storm, or it would take the
// balance from the others).
var uncapped = call{name: "chat stream without a cap", path: "/v1/chat/completions", stream: true, choices: 1,
	body: `{"model":"lux","messages":[{"role":"user","content":"Tell me about the sea."}],"stream":true}`}

// storm sends 49 requests at once, 7 of each call, then two uncapped ones, and
// waits for them to settle.
func (st *stack) storm(t *testing.T, headers map[string]string) []outcome {
	const rounds = 7
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	outs := make([]outcome, rounds*len(calls))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			outs[i] = st.send(client, calls[i%len(calls)], headers)
		}(i)
	}
	close(start)
	wg.Wait()
	for range 2 {
		outs = append(outs, st.send(client, uncapped, headers))
	}
	st.wg.Wait()
	return outs
}

// send sends one request and reads its answer.
func (st *stack) send(client *http.Client, c call, headers map[string]string) outcome {
	req, _ := http.NewRequest(http.MethodPost, st.server.URL+c.path, strings.NewReader(c.body))
	req.Header.Set("Authorization", "Bearer "+st.key)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	o := outcome{call: c, tok: st.tok}
	res, err := client.Do(req)
	if err != nil {
		o.err = err
		return o
	}
	o.status = res.StatusCode
	o.body, o.err = io.ReadAll(res.Body)
	res.Body.Close()
	if c.stream && o.status == http.StatusOK {
		o.parseStream()
	}
	return o
}

// parseStream reads a stream's events: the text and finish reasons per choice.
func (o *outcome) parseStream() {
	o.text, o.finishes = map[int]string{}, map[int][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(o.body)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	typ := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			typ = v
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		o.lastEvent = data
		if typ != "" {
			o.lastEvent = typ
		}
		if strings.Contains(data, `"code":"upstream_invalid_response"`) {
			o.invalidEvent = true
		}
		var v struct {
			Type    string
			Delta   string
			Choices []struct {
				Index        int
				Text         string
				Delta        struct{ Content string }
				FinishReason *string `json:"finish_reason"`
			}
		}
		if json.Unmarshal([]byte(data), &v) != nil {
			continue
		}
		if v.Type == "response.output_text.delta" {
			o.text[0] += v.Delta
		}
		for _, c := range v.Choices {
			o.text[c.Index] += c.Text + c.Delta.Content
			if c.FinishReason != nil {
				o.finishes[c.Index] = append(o.finishes[c.Index], *c.FinishReason)
			}
		}
		typ = ""
	}
}

// checkCapped checks a request answered by an upstream that wrote past its cap: a
// stream ends as OpenAI ends one at its max tokens, each choice within the cap.
func (o *outcome) checkCapped(t *testing.T) {
	t.Helper()
	if !o.call.stream {
		return // a plain body is relayed as it is; only its bill is bounded
	}
	if o.call.responses {
		if o.lastEvent != "response.incomplete" {
			t.Fatalf("%s: last event %q, want response.incomplete", o.call.name, o.lastEvent)
		}
	} else {
		if o.lastEvent != "[DONE]" {
			t.Fatalf("%s: last event %q", o.call.name, o.lastEvent)
		}
		for i := range o.call.choices {
			if f := o.finishes[i]; len(f) != 1 || f[0] != "length" {
				t.Fatalf("%s: choice %d finishes %v, want one length", o.call.name, i, f)
			}
		}
	}
	for i := range o.call.choices {
		if n := o.tok.Count(o.text[i]); o.call.cap > 0 && n > o.call.cap || n == 0 {
			t.Fatalf("%s: choice %d relayed %d tokens, cap %d", o.call.name, i, n, o.call.cap)
		}
	}
}

// metric sums a counter over its series.
func (st *stack) metric(t *testing.T, name string) float64 {
	t.Helper()
	families, err := st.metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
