package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// "dear" costs $1000 per 1M input and $2000 per 1M output tokens ($0.002 a token), so
// a $5 balance pays for only ~2,700 of its 4,096 output tokens.
func TestClampMaxTokens(t *testing.T) {
	tests := []struct {
		name        string
		extra       string
		clamp       bool
		wantStatus  int
		wantField   string // the cap field the upstream must see; "" = body untouched
		wantClamped bool
	}{
		{name: "no cap: clamped to the balance", clamp: true, wantStatus: 200, wantField: "max_completion_tokens", wantClamped: true},
		{name: "cap too high: lowered", extra: `"max_tokens":4000`, clamp: true, wantStatus: 200, wantField: "max_tokens", wantClamped: true},
		{name: "cap affordable: untouched", extra: `"max_completion_tokens":100`, clamp: true, wantStatus: 200},
		{name: "clamp off: refused", clamp: false, wantStatus: 429},
		{name: "clamp off, affordable cap: forwarded", extra: `"max_tokens":100`, clamp: false, wantStatus: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			s := *h.settings.Load()
			s.ClampMaxTokens = tc.clamp
			h.settings.Store(&s)
			key := h.account("acme", "5.00")
			body := chatBody("dear", false, tc.extra)
			res := h.post("/v1/chat/completions", key, body)
			got := readAll(t, res)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d: %s", res.StatusCode, got)
			}
			if tc.wantStatus != 200 {
				return
			}
			up := h.mock.Requests()[0].Body
			if tc.wantField == "" {
				if string(up) != body {
					t.Fatalf("body changed:\n%s\n%s", body, up)
				}
				return
			}
			var sent map[string]json.RawMessage
			if err := json.Unmarshal(up, &sent); err != nil {
				t.Fatal(err)
			}
			var capSent int64
			if err := json.Unmarshal(sent[tc.wantField], &capSent); err != nil {
				t.Fatalf("upstream body lacks %s: %s", tc.wantField, up)
			}
			req, _ := metering.ParseRequest(metering.ChatCompletions, []byte(body))
			tok, _ := metering.TokenizerFor(metering.O200kBase)
			price := mustPrice(t, h, "dear")
			want := price.MaxOutputFor(req.InputTokens(tok), 1, usd("5.50"))
			if capSent != want || want <= 0 || want >= 4000 {
				t.Fatalf("%s = %d, want %d (what $5.00 + $0.50 grace pays for)", tc.wantField, capSent, want)
			}
			logs := h.requestLogs()
			if logs[0]["clamped_max_tokens"] != want {
				t.Fatalf("log %v", logs[0])
			}
			if strings.Count(string(up), tc.wantField) != 1 {
				t.Fatalf("duplicate field: %s", up)
			}
		})
	}
}

func mustPrice(t *testing.T, h *harness, model string) metering.Price {
	_, p, ok := h.settings.Load().Pricing.Resolve(model)
	if !ok {
		t.Fatalf("no price for %s", model)
	}
	return p
}

// TestClampKeepsOverdraftWithinGrace: the clamped request, billed what the upstream
// reports, leaves the account at most grace below zero.
func TestClampKeepsOverdraftWithinGrace(t *testing.T) {
	h := newHarness(t)
	h.mock.OutputTokens = 100000 // would generate far more than the balance pays for
	key := h.account("acme", "5.00")
	res := h.post("/v1/chat/completions", key, chatBody("dear", false, ""))
	if body := readAll(t, res); res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	a := h.get("acme")
	if a.Balance() < -testPolicy.Grace || a.Balance() >= 0 {
		t.Fatalf("balance %s: the clamped request should spend into, but not past, the grace", a.Balance())
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventUsage || ev.ToDebt == 0 {
		t.Fatalf("event %+v", ev)
	}
	// The account is now in debt: nothing more is admitted.
	res = h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, `"max_tokens":1`))
	if readAll(t, res); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("in debt: %d", res.StatusCode)
	}
}

// TestClampRespectsResponsesMinimum: OpenAI's Responses API refuses
// max_output_tokens below 16, so a balance that pays for fewer is a 429 (nothing
// forwarded), and one that pays for more is clamped to what it pays for.
func TestClampRespectsResponsesMinimum(t *testing.T) {
	tests := []struct {
		name       string
		affordable int64 // output tokens the balance plus grace pays for
		wantStatus int
	}{
		{name: "affords 10: refused, never sent below 16", affordable: 10, wantStatus: http.StatusTooManyRequests},
		{name: "affords 15: refused", affordable: 15, wantStatus: http.StatusTooManyRequests},
		{name: "affords 16: clamped to 16", affordable: 16, wantStatus: http.StatusOK},
		{name: "affords 40: clamped to 40", affordable: 40, wantStatus: http.StatusOK},
	}
	const body = `{"model":"dear","input":"Say hello to the metering proxy."}`
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			on := *h.settings.Load()
			on.ClampMaxTokens = true
			on.Policy.Grace = 0 // the balance alone pays: no overdraft to account for
			h.settings.Store(&on)
			key := h.account("acme", "5.00")
			req, err := metering.ParseRequest(metering.Responses, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := metering.TokenizerFor(metering.O200kBase)
			price := mustPrice(t, h, "dear")
			// Spend the balance down so that it pays for exactly tc.affordable tokens.
			spend := usd("5.00") - price.WorstCase(req.InputTokens(tok), tc.affordable)
			if r, err := h.store.Reserve(h.ctx, billing.ReserveRequest{Account: "acme", HoldID: "drain", Estimate: spend, TTL: time.Minute}); err != nil || !r.Admitted {
				t.Fatalf("draining %s: %+v %v", spend, r, err)
			}
			if _, err := h.store.Settle(h.ctx, billing.SettleRequest{Account: "acme", HoldID: "drain", Cost: spend}); err != nil {
				t.Fatal(err)
			}
			res := h.post("/v1/responses", key, body)
			got := readAll(t, res)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.wantStatus, got)
			}
			if tc.wantStatus != http.StatusOK {
				if n := len(h.mock.Requests()); n != 0 {
					t.Fatalf("%d requests forwarded; a balance below the minimum cap must forward none", n)
				}
				return
			}
			var sent struct {
				MaxOutputTokens int64 `json:"max_output_tokens"`
			}
			if err := json.Unmarshal(h.mock.Requests()[0].Body, &sent); err != nil {
				t.Fatal(err)
			}
			if sent.MaxOutputTokens != tc.affordable {
				t.Fatalf("max_output_tokens sent %d, want %d", sent.MaxOutputTokens, tc.affordable)
			}
		})
	}
}
