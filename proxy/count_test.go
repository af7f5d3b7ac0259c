package proxy

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/metering"
)

// countPromptsAlways makes a rule proxy count every prompt exactly at admission
// (metering.count_prompts: always).
func countPromptsAlways(o *Options) {
	s := *o.Settings()
	s.CountPromptsAlways = true
	o.Settings = func() *Settings { return &s }
}

// countPromptsAlways makes h count every prompt exactly at admission.
func (h *harness) countPromptsAlways() {
	s := *h.settings.Load()
	s.CountPromptsAlways = true
	h.settings.Store(&s)
}

// Admission on the prompt's byte bound: one reserve, all or nothing, when the
// bound fits; for want of credit, the prompt counted and the same hold id
// reserved again on the exact estimate with the clamp (no release: a denial holds
// nothing); with no credit at all, one reserve and the 429.
func TestReserveOnPromptBound(t *testing.T) {
	chat := chatBody("dear", false, "") // dear: 4,096 output tokens at most, $0.002 each
	tests := []struct {
		name        string
		answers     []billing.Reservation // per reserve call; Held -1: the estimate, -2: 40 output tokens on the exact prompt
		wantCalls   int
		wantExact   bool
		wantStatus  int
		wantClamped int64
	}{
		{name: "the bound fits: held whole, never counted", answers: []billing.Reservation{{Admitted: true, Held: -1}}, wantCalls: 1},
		{name: "the bound does not fit: counted, reserved again and clamped",
			answers:   []billing.Reservation{{Reason: billing.ReasonInsufficient}, {Admitted: true, Held: -2}},
			wantCalls: 2, wantExact: true, wantClamped: 40},
		{name: "the exact estimate does not fit either: 429", answers: []billing.Reservation{{Reason: billing.ReasonInsufficient}, {Reason: billing.ReasonInsufficient}},
			wantCalls: 2, wantExact: true, wantStatus: http.StatusTooManyRequests},
		{name: "the key's limit refuses the bound: counted, reserved again and clamped",
			answers:   []billing.Reservation{{Reason: billing.ReasonKeyLimit}, {Admitted: true, Held: -2}},
			wantCalls: 2, wantExact: true, wantClamped: 40},
		{name: "the monthly cap refuses the bound and the exact estimate: 429",
			answers:   []billing.Reservation{{Reason: billing.ReasonSpendLimit}, {Reason: billing.ReasonSpendLimit}},
			wantCalls: 2, wantExact: true, wantStatus: http.StatusTooManyRequests},
		{name: "no credit at all: one reserve, 429, never counted", answers: []billing.Reservation{{Reason: billing.ReasonEmpty}},
			wantCalls: 1, wantStatus: http.StatusTooManyRequests},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var asked []billing.ReserveRequest
			var released int
			var x *exchange
			ledger := &billingtest.Ledger{
				ReserveFunc: func(_ context.Context, r billing.ReserveRequest) (billing.Reservation, error) {
					asked = append(asked, r)
					res := tc.answers[len(asked)-1]
					switch res.Held {
					case -1:
						res.Held = r.Estimate
					case -2:
						res.Held = x.price.WorstCase(x.input, 40)
					}
					return res, nil
				},
				ReleaseFunc: func(context.Context, string, string, billing.Usage) (billing.Settlement, error) {
					released++
					return billing.Settlement{}, nil
				},
			}
			p := ruleProxy(t, ledger, true)
			x = ruleExchange(p, "/v1/chat/completions", chat)
			runRules(t, p, x, untilReserve...)
			bound, exact := x.req.InputTokenBound(), x.req.InputTokens(mustTokenizer(t, metering.O200kBase))
			boundEstimate, exactEstimate := x.req.Estimate(x.price, bound), x.req.Estimate(x.price, exact)
			if bound.Input <= exact.Input || boundEstimate <= exactEstimate {
				t.Fatalf("bound %d (estimate %s) is not above the exact count %d (%s): the case tests nothing", bound.Input, boundEstimate, exact.Input, exactEstimate)
			}
			aerr := p.reserve(x)

			if len(asked) != tc.wantCalls {
				t.Fatalf("%d reserve calls, want %d: %+v", len(asked), tc.wantCalls, asked)
			}
			if first := asked[0]; first.HoldID != "req_1" || first.Estimate != boundEstimate || first.Minimum != boundEstimate {
				t.Fatalf("first reserve %+v, want the bound's estimate %s, all or nothing", first, boundEstimate)
			}
			if tc.wantCalls == 2 {
				floor := x.req.ClampFloor(x.price, exact)
				if second := asked[1]; second.HoldID != "req_1" || second.Estimate != exactEstimate || second.Minimum != floor {
					t.Fatalf("second reserve %+v, want the same hold id, the exact estimate %s and floor %s", second, exactEstimate, floor)
				}
			}
			if x.prompt.exact != tc.wantExact || (tc.wantExact && x.input != exact) || (!tc.wantExact && x.input != bound) {
				t.Fatalf("prompt exact %v, input %d; want exact %v (bound %d, exact %d)", x.prompt.exact, x.input.Input, tc.wantExact, bound.Input, exact.Input)
			}
			switch {
			case tc.wantStatus == 0 && aerr != nil:
				t.Fatalf("refused: %d %s", aerr.status, aerr.message)
			case tc.wantStatus != 0 && (aerr == nil || aerr.status != tc.wantStatus):
				t.Fatalf("answer %+v, want status %d", aerr, tc.wantStatus)
			}
			if x.clampedTo != tc.wantClamped || released != 0 {
				t.Fatalf("clamped to %d, %d releases; want %d, none", x.clampedTo, released, tc.wantClamped)
			}
		})
	}
}

func mustTokenizer(t *testing.T, encoding string) metering.Tokenizer {
	t.Helper()
	tok, err := metering.TokenizerFor(encoding)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Through the proxy on the real Redis: a response with usage is billed by it and
// its prompt never counted (local prompt count 0); one without is billed by the
// exact local count; count_prompts: always records the exact count; a TPM limit
// counts the exact prompt.
func TestPromptCountedOnlyWhenNeeded(t *testing.T) {
	// A cap that costs more than the whole answer: below it, the bill needs no count.
	body := chatBody("gpt-4o-mini", false, `"max_tokens":1000`)
	exact := localInput(t, metering.ChatCompletions, "gpt-4o-mini", body)
	tests := []struct {
		name      string
		setup     func(h *harness)
		header    []string
		wantLocal int64 // the usage event's local prompt count
		wantBill  int64 // its billed prompt tokens; -1: the upstream's (the mock's count)
		small     bool  // max_tokens 1: the claim costs more than the cap alone
		tpm       bool  // a TPM limit of 100,000 applies
	}{
		{name: "upstream usage: not counted", wantLocal: 0, wantBill: -1},
		{name: "no upstream usage: counted at settlement", header: []string{"X-Mock-No-Usage", "true"}, wantLocal: exact, wantBill: exact},
		{name: "count_prompts always", setup: (*harness).countPromptsAlways, wantLocal: exact, wantBill: -1},
		{name: "a cap cheaper than the answer: counted at settlement", wantLocal: exact, wantBill: -1, small: true},
		{name: "a TPM limit: counted for it", setup: func(h *harness) { rateLimited(t, h, 0, 100_000) }, wantLocal: exact, wantBill: -1, tpm: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			key := h.account("acme", "5.00")
			b0 := body
			if tc.small {
				b0 = chatBody("gpt-4o-mini", false, `"max_tokens":1`)
			}
			res := h.post("/v1/chat/completions", key, b0, tc.header...)
			b := readAll(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, b)
			}
			ev := h.lastEvent("acme")
			wantBill := tc.wantBill
			if wantBill < 0 {
				wantBill = decodeUsage(t, b).PromptTokens
			}
			if ev.Type != billing.EventUsage || ev.LocalPromptTokens != tc.wantLocal || ev.PromptTokens != wantBill || ev.LocalCompletionTokens <= 0 {
				t.Fatalf("usage event %+v; want local prompt %d, billed prompt %d", ev, tc.wantLocal, wantBill)
			}
			if remaining := res.Header.Get("X-Ratelimit-Remaining-Tokens"); tc.tpm || remaining != "" {
				if want := strconv.FormatInt(100_000-exact-1000, 10); remaining != want {
					t.Fatalf("TPM remaining %s, want %s (the exact prompt plus max_tokens)", remaining, want)
				}
			}
			if a := h.get("acme"); a.Reserved != 0 || a.Balance() != usd("5.00")-ev.Cost {
				t.Fatalf("account %+v after one request billed %s", a, ev.Cost)
			}
		})
	}
}

// The drift check of a prompt admitted on its bound and never counted: the
// output compared as always, the prompt only against the bound.
func TestDriftOnPromptBound(t *testing.T) {
	x := &exchange{settings: &Settings{DriftTolerance: 0.10}, prompt: promptCount{bound: metering.Tokens{Input: 100}}}
	tests := []struct {
		name     string
		upstream metering.Tokens
		local    metering.Tokens
		want     bool
	}{
		{"within the bound, output equal", metering.Tokens{Input: 90, Output: 20}, metering.Tokens{Output: 20}, false},
		{"at the bound", metering.Tokens{Input: 100, Output: 20}, metering.Tokens{Output: 20}, false},
		{"above the bound", metering.Tokens{Input: 101, Output: 20}, metering.Tokens{Output: 20}, true},
		{"output beyond the tolerance", metering.Tokens{Input: 50, Output: 30}, metering.Tokens{Output: 20}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := metering.Result{Tokens: tc.upstream, Local: tc.local, Source: billing.TokenSourceUpstream}
			if got := drifts(x, res); got != tc.want {
				t.Fatalf("drifts = %v, want %v", got, tc.want)
			}
			res.Source = billing.TokenSourceLocal
			if drifts(x, res) {
				t.Fatal("a local count drifts from itself")
			}
		})
	}
}
