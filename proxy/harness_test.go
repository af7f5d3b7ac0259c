package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

const upstreamKey = "sk-upstream-operator-secret"

var usd = money.MustParse

// testPrices: gpt-4o-mini at OpenAI's list prices; "dear" makes cents add up fast.
func testPricing(t testing.TB) *metering.Pricing {
	t.Helper()
	models := map[string]metering.Price{
		"gpt-4o-mini":            {Input: usd("0.15"), CachedInput: usd("0.075"), AudioInput: usd("0.15"), Output: usd("0.60"), Reasoning: usd("0.60"), AudioOutput: usd("0.60"), MaxOutputTokens: 16384},
		"gpt-4o":                 {Input: usd("2.50"), CachedInput: usd("1.25"), AudioInput: usd("2.50"), Output: usd("10.00"), Reasoning: usd("10.00"), AudioOutput: usd("10.00"), MaxOutputTokens: 16384},
		"dear":                   {Input: usd("1000"), CachedInput: usd("500"), AudioInput: usd("1000"), Output: usd("2000"), Reasoning: usd("2000"), AudioOutput: usd("2000"), MaxOutputTokens: 4096, Encoding: metering.O200kBase},
		"text-embedding-3-small": {Input: usd("0.02"), CachedInput: usd("0.02"), AudioInput: usd("0.02")},
	}
	p, err := metering.NewPricing(models, map[string]string{"mini": "gpt-4o-mini"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var testPolicy = billing.Policy{
	Grace:       usd("0.50"),
	MinPurchase: usd("5.00"),
	CreditTTL:   365 * 24 * time.Hour,
	HoldTTL:     15 * time.Minute,
	DefaultTier: "tier-1",
	Tiers:       map[string]billing.Tier{"tier-1": {MaxTopUp: usd("100.00"), MaxBalance: usd("1000.00")}},
}

// harness is a proxy over real HTTP, in front of the mock upstream over real HTTP,
// on a real Redis (or the loud miniredis fallback).
type harness struct {
	t        testing.TB
	ctx      context.Context
	store    *redisstore.Store
	redis    *testredis.Store
	mock     *mockupstream.Server
	upstream *httptest.Server
	proxy    *Proxy
	server   *httptest.Server
	logs     *observer.ObservedLogs
	settings atomic.Pointer[Settings]
	// inflight counts running handlers: a handler settles after the app has read the
	// last byte, so tests wait for it before they look at the ledger.
	inflight sync.WaitGroup
}

type harnessOption func(*Options)

func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: context.Background(), store: store, redis: r, mock: mockupstream.New()}
	h.mock.APIKey = upstreamKey
	h.upstream = httptest.NewServer(h.mock)
	t.Cleanup(h.upstream.Close)
	h.settings.Store(&Settings{Policy: testPolicy, Pricing: testPricing(t), ClampMaxTokens: true, DriftTolerance: 0.10})

	core, logs := observer.New(zap.DebugLevel)
	h.logs = logs
	u, _ := url.Parse(h.upstream.URL + "/v1")
	o := Options{
		Upstream:    u,
		UpstreamKey: upstreamKey,
		Ledger:      store,
		Keys:        store,
		Settings:    h.settings.Load,
		Logger:      zap.New(core),
		Timeout:     10 * time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	h.proxy, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.inflight.Add(1)
		defer h.inflight.Done()
		h.proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(h.server.Close)
	return h
}

// account creates an account with the given top-ups and returns one app key.
func (h *harness) account(id string, topups ...string) string {
	h.t.Helper()
	if _, err := h.store.CreateAccount(h.ctx, id, "tier-1"); err != nil {
		h.t.Fatal(err)
	}
	for _, a := range topups {
		if _, err := h.store.TopUp(h.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: billing.NewID("grant_"), Amount: usd(a)}); err != nil {
			h.t.Fatal(err)
		}
	}
	_, secret, err := h.store.CreateKey(h.ctx, id, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	return secret
}

func (h *harness) get(id string) billing.Account {
	h.t.Helper()
	h.inflight.Wait()
	a, err := h.store.GetAccount(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

func (h *harness) events(id string) []billing.Event {
	h.t.Helper()
	h.inflight.Wait()
	p, err := h.store.Events(h.ctx, id, "", 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	return p.Events
}

// lastEvent returns the account's newest ledger event.
func (h *harness) lastEvent(id string) billing.Event {
	h.t.Helper()
	evs := h.events(id)
	if len(evs) == 0 {
		h.t.Fatalf("account %s has no events", id)
	}
	return evs[len(evs)-1]
}

// post sends a JSON request to the proxy.
func (h *harness) post(path, key, body string, header ...string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.server.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

func readAll(t testing.TB, res *http.Response) []byte {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chatBody is a small chat request.
func chatBody(model string, stream bool, extra string) string {
	s := `{"model":"` + model + `","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the metering proxy."}]`
	if stream {
		s += `,"stream":true`
	}
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

// chatUsage decodes the usage of a plain chat completion.
type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func decodeUsage(t testing.TB, body []byte) chatUsage {
	t.Helper()
	var v struct {
		Usage *chatUsage `json:"usage"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Usage == nil {
		t.Fatalf("no usage in %s: %v", body, err)
	}
	return *v.Usage
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(body []byte) []string {
	var out []string
	for _, ev := range bytes.Split(body, []byte("\n\n")) {
		for _, line := range bytes.Split(ev, []byte("\n")) {
			if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				out = append(out, string(d))
			}
		}
	}
	return out
}

// requestLogs returns the "request" log lines' fields.
func (h *harness) requestLogs() []map[string]any {
	h.inflight.Wait()
	var out []map[string]any
	for _, e := range h.logs.FilterMessage("request").All() {
		out = append(out, e.ContextMap())
	}
	return out
}

// tokensOf converts a chat usage object to billable tokens.
func tokensOf(u chatUsage) metering.Tokens {
	return metering.Tokens{Input: u.PromptTokens, CachedInput: u.PromptTokensDetails.CachedTokens, Output: u.CompletionTokens, Reasoning: u.CompletionTokensDetails.ReasoningTokens}
}
