package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

const backgroundBody = `{"model":"gpt-4o-mini","input":"Write a haiku about ledgers.","max_output_tokens":64,"background":true}`

// newBackground creates a background response through the proxy.
func newBackground(t *testing.T, h *harness, key string) (id string, body []byte) {
	t.Helper()
	status, body := h.do(http.MethodPost, "/v1/responses", key, strings.NewReader(backgroundBody), "Content-Type", "application/json")
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"queued"`) {
		t.Fatalf("create: %d %s", status, body)
	}
	return idOf(t, body), body
}

// responseCost is what the response id costs by the usage the upstream reports
// for it now, at gpt-4o-mini's list prices.
func responseCost(t *testing.T, h *harness, key, id string) (money.Micros, metering.Tokens) {
	t.Helper()
	status, body := h.do(http.MethodGet, "/v1/responses/"+id, key, nil)
	var r struct {
		Usage *struct {
			InputTokens        int64 `json:"input_tokens"`
			OutputTokens       int64 `json:"output_tokens"`
			InputTokensDetails struct {
				CachedTokens int64 `json:"cached_tokens"`
			} `json:"input_tokens_details"`
		} `json:"usage"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &r) != nil || r.Usage == nil {
		t.Fatalf("the owner's GET of %s: %d %s", id, status, body)
	}
	tk := metering.Tokens{Input: r.Usage.InputTokens, CachedInput: r.Usage.InputTokensDetails.CachedTokens, Output: r.Usage.OutputTokens}
	_, price, _ := h.settings.Load().Pricing.Resolve("gpt-4o-mini")
	return price.Cost(tk), tk
}

// TestBackgroundResponses: a background response holds its worst case while
// it runs at the upstream, beyond billing.hold_ttl's sweep, and the poller
// bills it by its usage when it ends: all of it when it completed, the prompt
// when it was cancelled first; a failed one, or one the upstream forgot, is
// released. The next round books nothing more.
func TestBackgroundResponses(t *testing.T) {
	h, _ := newObjectHarness(t)
	for _, tc := range []struct {
		name     string
		end      func(t *testing.T, key, id string)
		released bool
	}{
		{name: "completed", end: func(*testing.T, string, string) { h.mock.FinishBackground("") }},
		{name: "cancelled", end: func(t *testing.T, key, id string) {
			if status, body := h.do(http.MethodPost, "/v1/responses/"+id+"/cancel", key, nil); status != http.StatusOK ||
				!strings.Contains(string(body), `"status":"cancelled"`) {
				t.Fatalf("cancel: %d %s", status, body)
			}
		}},
		{name: "failed", released: true, end: func(*testing.T, string, string) { h.mock.FinishBackground("failed") }},
		{name: "forgotten", released: true, end: func(t *testing.T, _, id string) {
			req, _ := http.NewRequest(http.MethodDelete, h.upstream.URL+"/v1/responses/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+upstreamKey)
			if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("delete at the upstream: %v %v", res, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			account := "bg-" + tc.name
			key := h.account(account, "10.00")
			id, _ := newBackground(t, h, key)
			a := h.get(account)
			held := a.Reserved
			rec, err := h.store.GetBatch(h.ctx, account, id)
			if err != nil || !rec.Background || rec.Held != held || held <= 0 || rec.Endpoint != "/v1/responses" || rec.Model != "gpt-4o-mini" ||
				rec.InputTokens <= 0 || rec.OutputCap != 64 || rec.Discount != 1_000_000 || rec.HoldExpires.Sub(rec.CreatedAt) != backgroundHoldTTL {
				t.Fatalf("record %+v (reserved %s): %v", rec, held, err)
			}
			if ev := h.lastEvent(account); ev.Type == billing.EventUsage {
				t.Fatalf("billed before it ended: %+v", ev)
			}
			if logs := h.requestLogs(); logs[len(logs)-1]["background_response"] != id {
				t.Errorf("request line %v does not name the background response", logs[len(logs)-1])
			}
			if sw, err := h.proxy.SettleBatches(h.ctx); err != nil || sw.Open != 1 {
				t.Fatalf("while running: %+v %v", sw, err)
			}
			tc.end(t, key, id)
			sw, err := h.proxy.SettleBatches(h.ctx)
			if err != nil || sw.Settled+sw.Released != 1 || (sw.Released == 1) != tc.released {
				t.Fatalf("round after it ended: %+v %v", sw, err)
			}
			a, ev := h.get(account), h.lastEvent(account)
			if a.Reserved != 0 {
				t.Fatalf("reserved %s after it ended", a.Reserved)
			}
			if tc.released {
				if ev.Type != billing.EventRelease || ev.Amount != held || a.Balance() != usd("10.00") || !strings.Contains(ev.Note, id) {
					t.Fatalf("released: %+v, balance %s", ev, a.Balance())
				}
				return
			}
			cost, tk := responseCost(t, h, key, id)
			if tc.name == "cancelled" && tk.Output != 0 {
				t.Fatalf("the mock's cancelled response reports output %+v", tk)
			}
			if ev.Type != billing.EventUsage || ev.Cost != cost || cost <= 0 || cost > held || ev.Endpoint != "/v1/responses" ||
				ev.PromptTokens != tk.Input || ev.CompletionTokens != tk.Output || ev.TokenSource != billing.TokenSourceUpstream ||
				!strings.Contains(ev.Note, "background response "+id+" "+tc.name) || ev.Prices == nil || ev.Prices.Input != usd("0.15") {
				t.Fatalf("settled %+v, want a usage event of %s for %+v (held %s)", ev, cost, tk, held)
			}
			if a.Balance() != usd("10.00")-cost {
				t.Fatalf("balance %s, cost %s", a.Balance(), cost)
			}
			checkSettledOnce(t, h, account, rec)
		})
	}
}

// A background response still running outlives billing.hold_ttl: its hold is
// not swept, and it is billed when it ends.
func TestBackgroundHoldOutlivesHoldTTL(t *testing.T) {
	h, clk := newObjectHarness(t)
	key := h.account("acme", "10.00")
	id, _ := newBackground(t, h, key)
	held := h.get("acme").Reserved
	clk.Advance(testPolicy.HoldTTL + time.Minute)
	if a := h.get("acme"); a.Reserved != held {
		t.Fatalf("reserved %s after hold_ttl, want %s", a.Reserved, held)
	}
	h.mock.FinishBackground("")
	if sw, err := h.proxy.SettleBatches(h.ctx); err != nil || sw.Settled != 1 {
		t.Fatalf("round: %+v %v", sw, err)
	}
	if cost, _ := responseCost(t, h, key, id); h.lastEvent("acme").Cost != cost {
		t.Fatalf("billed %+v, want %s", h.lastEvent("acme"), cost)
	}
}

// What background: true is refused for, holding nothing: a stream (nothing
// would wait for its end), a proxy that runs no poller, and an answer the
// store cannot record (cancelled at the upstream, answered 503).
func TestBackgroundRefusals(t *testing.T) {
	t.Run("stream", func(t *testing.T) {
		h, _ := newObjectHarness(t)
		key := h.account("acme", "10.00")
		body := strings.Replace(backgroundBody, `"background":true`, `"background":true,"stream":true`, 1)
		status, answer := h.do(http.MethodPost, "/v1/responses", key, strings.NewReader(body), "Content-Type", "application/json")
		if status != http.StatusBadRequest || !strings.Contains(string(answer), `"param": "background"`) || len(h.mock.Requests()) != 0 {
			t.Fatalf("%d %s, %d upstream requests", status, answer, len(h.mock.Requests()))
		}
	})
	t.Run("no batch store", func(t *testing.T) {
		h, _ := newObjectHarness(t, func(o *Options) { o.Batches = nil })
		key := h.account("acme", "10.00")
		status, answer := h.do(http.MethodPost, "/v1/responses", key, strings.NewReader(backgroundBody), "Content-Type", "application/json")
		if status != http.StatusBadRequest || !strings.Contains(string(answer), "unsupported_parameter") || h.get("acme").Reserved != 0 {
			t.Fatalf("%d %s", status, answer)
		}
	})
	t.Run("not recorded", func(t *testing.T) {
		var h *harness
		h, _ = newObjectHarness(t, func(o *Options) { o.Batches = unrecordingBatches{o.Batches} })
		key := h.account("acme", "10.00")
		status, answer := h.do(http.MethodPost, "/v1/responses", key, strings.NewReader(backgroundBody), "Content-Type", "application/json")
		if status != http.StatusServiceUnavailable || !strings.Contains(string(answer), "cancelled at the upstream") {
			t.Fatalf("%d %s", status, answer)
		}
		a, ev := h.get("acme"), h.lastEvent("acme")
		if a.Reserved != 0 || a.Balance() != usd("10.00") || ev.Type != billing.EventRelease {
			t.Fatalf("reserved %s, balance %s, last event %+v", a.Reserved, a.Balance(), ev)
		}
		var cancelled bool
		for _, r := range h.mock.Requests() {
			cancelled = cancelled || (r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/cancel"))
		}
		if !cancelled {
			t.Fatal("the unrecorded background response was not cancelled at the upstream")
		}
	})
}

// unrecordingBatches is a batch store that cannot record.
type unrecordingBatches struct{ billing.BatchStore }

func (unrecordingBatches) OpenBatch(context.Context, billing.Batch) error {
	return billing.ErrUnavailable
}

// recordingBatches is a batch store that records what is opened.
type recordingBatches struct {
	billing.BatchStore
	opened []billing.Batch
}

func (r *recordingBatches) OpenBatch(_ context.Context, b billing.Batch) error {
	r.opened = append(r.opened, b)
	return nil
}

// A background answer too large to be a queued response object is relayed
// whole and billed at once, as any answer; nothing is recorded as open.
func TestBackgroundAnswerTooLargeToPoll(t *testing.T) {
	text := strings.Repeat("ledger ", (maxObjectBody+100_000)/7)
	body := `{"id":"resp_big","object":"response","status":"completed","background":true,"output":[{"type":"message","role":"assistant",` +
		`"content":[{"type":"output_text","text":"` + text + `"}]}],"usage":{"input_tokens":9,"output_tokens":12,"total_tokens":21}}`
	secret := billing.NewKeySecret()
	var settled []billing.SettleRequest
	batches := &recordingBatches{}
	u, _ := url.Parse("http://upstream.invalid/v1")
	settings := &Settings{Policy: testPolicy, Pricing: testPricing(t), ClampMaxTokens: true, DriftTolerance: 0.10}
	p, err := New(Options{Upstream: u, UpstreamKey: upstreamKey, Settings: func() *Settings { return settings }, Timeout: 10 * time.Second,
		Keys: &billingtest.Keys{LookupKeyFunc: func(context.Context, billing.KeyHash) (billing.APIKey, error) {
			return billing.APIKey{ID: "key_1", Account: "acct"}, nil
		}},
		Ledger: &billingtest.Ledger{
			ReserveFunc: func(_ context.Context, r billing.ReserveRequest) (billing.Reservation, error) {
				return billing.Reservation{Admitted: true, Held: r.Estimate}, nil
			},
			SettleFunc: func(_ context.Context, s billing.SettleRequest) (billing.Settlement, error) {
				settled = append(settled, s)
				return billing.Settlement{Cost: s.Cost}, nil
			},
		},
		Batches: batches, Transport: cannedUpstream{body: []byte(body)}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/responses", strings.NewReader(backgroundBody))
	req.Header.Set("Authorization", "Bearer "+secret)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, req)
	if w.Code != http.StatusOK || w.Body.String() != body {
		t.Fatalf("status %d, %d bytes relayed of %d", w.Code, w.Body.Len(), len(body))
	}
	if len(batches.opened) != 0 || len(settled) != 1 || settled[0].Usage.CompletionTokens != 12 || settled[0].Usage.TokenSource != billing.TokenSourceUpstream {
		t.Fatalf("opened %d, settled %+v", len(batches.opened), settled)
	}
}
