package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// reportRecorder is an Observer that keeps the Reports, in arrival order: the metrics'
// token drift counter (metrics.Metrics.RequestDone) counts Report.Drift.
type reportRecorder struct {
	mu      sync.Mutex
	reports []Report
}

func (r *reportRecorder) HoldOpened() {}
func (r *reportRecorder) HoldClosed() {}
func (r *reportRecorder) RequestDone(rep Report) {
	r.mu.Lock()
	r.reports = append(r.reports, rep)
	r.mu.Unlock()
}

func (r *reportRecorder) last(t *testing.T) Report {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reports) == 0 {
		t.Fatal("no report")
	}
	return r.reports[len(r.reports)-1]
}

// driftHarness is a harness whose pricing also has gpt-4 (cl100k_base), with a
// recording observer.
func driftHarness(t *testing.T) (*harness, *reportRecorder) {
	t.Helper()
	rec := &reportRecorder{}
	h := newHarness(t, func(o *Options) { o.Observer = rec })
	models := map[string]metering.Price{
		"gpt-4o":                 {Input: usd("2.50"), CachedInput: usd("1.25"), AudioInput: usd("2.50"), Output: usd("10.00"), Reasoning: usd("10.00"), AudioOutput: usd("10.00"), MaxOutputTokens: 16384},
		"gpt-4":                  {Input: usd("30.00"), CachedInput: usd("30.00"), AudioInput: usd("30.00"), Output: usd("60.00"), Reasoning: usd("60.00"), AudioOutput: usd("60.00"), MaxOutputTokens: 8192},
		"text-embedding-3-small": {Input: usd("0.02"), CachedInput: usd("0.02"), AudioInput: usd("0.02")},
	}
	p, err := metering.NewPricing(models, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := *h.settings.Load()
	s.Pricing = p
	s.CountPromptsAlways = true // the cases compare exact local prompt counts; TestDriftOnPromptBound the bound's
	if s.DriftTolerance != 0.10 {
		t.Fatalf("the cases below assume a drift tolerance of 0.10, the harness has %v", s.DriftTolerance)
	}
	h.settings.Store(&s)
	return h, rec
}

// localInput is the proxy's local count of a request's input, the way it counts it.
func localInput(t *testing.T, ep metering.Endpoint, model, body string) int64 {
	t.Helper()
	r, err := metering.ParseRequest(ep, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := metering.TokenizerFor(metering.EncodingForModel(model))
	if err != nil {
		t.Fatal(err)
	}
	return r.InputTokens(tok).Input
}

// requestLogEntry returns the one "request" log line of an account, with its level.
func requestLogEntry(t *testing.T, h *harness, account string) (zapcore.Level, map[string]any) {
	t.Helper()
	h.inflight.Wait()
	var found []map[string]any
	var level zapcore.Level
	for _, e := range h.logs.FilterMessage("request").All() {
		if m := e.ContextMap(); m["account"] == account {
			found = append(found, m)
			level = e.Level
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d request log lines for %s, want 1", len(found), account)
	}
	return level, found[0]
}

func int64Field(m map[string]any, key string) int64 {
	switch v := m[key].(type) {
	case int64:
		return v
	case int:
		return int64(v)
	}
	return -1
}

// TestTokenDriftThroughProxy: when the upstream's usage differs from the proxy's own
// count by more than metering.drift_tolerance (0.10 of the upstream's total), the
// request is still billed by the upstream's usage, and its log line is at warn level
// with token_drift: true and both counts; the Report the metrics' drift counter reads
// has Drift set. Within the tolerance there is no flag. The mock's reported usage is
// overridden with X-Mock-Prompt-Tokens / X-Mock-Completion-Tokens; its true usage is
// the proxy's local count (16 generated tokens, the prompt by the same formula).
func TestTokenDriftThroughProxy(t *testing.T) {
	h, rec := driftHarness(t)
	const out = 16 // the mock's default reply length, one token per word
	chat := chatBody("gpt-4o", false, "")
	chatLocal := localInput(t, metering.ChatCompletions, "gpt-4o", chat)
	// The largest difference within the tolerance: d ≤ 0.1 × (local + d) ⇔ 9d ≤ local.
	edge := (chatLocal + out) / 9
	stream := chatBody("gpt-4o", true, "")
	resp := `{"model":"gpt-4o","instructions":"Be terse.","input":"Tell me a three sentence bedtime story."}`
	respLocal := localInput(t, metering.Responses, "gpt-4o", resp)
	emb := `{"model":"text-embedding-3-small","input":["The food was delicious and the waiter...","second input"]}`
	embLocal := localInput(t, metering.Embeddings, "text-embedding-3-small", emb)

	tests := []struct {
		name              string
		path, model, body string
		headers           []string
		localIn, localOut int64
		wantIn, wantOut   int64 // billed: the upstream's usage
		wantDrift         bool
	}{
		{name: "exact", path: "/v1/chat/completions", model: "gpt-4o", body: chat,
			localIn: chatLocal, localOut: out, wantIn: chatLocal, wantOut: out},
		{name: "prompt doubled", path: "/v1/chat/completions", model: "gpt-4o", body: chat,
			headers: []string{"X-Mock-Prompt-Tokens", strconv.FormatInt(2*chatLocal, 10)},
			localIn: chatLocal, localOut: out, wantIn: 2 * chatLocal, wantOut: out, wantDrift: true},
		{name: "prompt under-reported", path: "/v1/chat/completions", model: "gpt-4o", body: chat,
			headers: []string{"X-Mock-Prompt-Tokens", "1"},
			localIn: chatLocal, localOut: out, wantIn: 1, wantOut: out, wantDrift: true},
		{name: "completion beyond tolerance", path: "/v1/chat/completions", model: "gpt-4o", body: chat,
			headers: []string{"X-Mock-Completion-Tokens", strconv.FormatInt(out+edge+1, 10)},
			localIn: chatLocal, localOut: out, wantIn: chatLocal, wantOut: out + edge + 1, wantDrift: true},
		{name: "completion at tolerance", path: "/v1/chat/completions", model: "gpt-4o", body: chat,
			headers: []string{"X-Mock-Completion-Tokens", strconv.FormatInt(out+edge, 10)},
			localIn: chatLocal, localOut: out, wantIn: chatLocal, wantOut: out + edge},
		{name: "prompt within tolerance", path: "/v1/chat/completions", model: "gpt-4o", body: chat,
			headers: []string{"X-Mock-Prompt-Tokens", strconv.FormatInt(chatLocal+2, 10)},
			localIn: chatLocal, localOut: out, wantIn: chatLocal + 2, wantOut: out},
		{name: "stream completion tripled", path: "/v1/chat/completions", model: "gpt-4o", body: stream,
			headers: []string{"X-Mock-Completion-Tokens", strconv.Itoa(3 * out)},
			localIn: chatLocal, localOut: out, wantIn: chatLocal, wantOut: 3 * out, wantDrift: true},
		{name: "stream exact", path: "/v1/chat/completions", model: "gpt-4o", body: stream,
			localIn: chatLocal, localOut: out, wantIn: chatLocal, wantOut: out},
		{name: "responses drift", path: "/v1/responses", model: "gpt-4o", body: resp,
			headers: []string{"X-Mock-Prompt-Tokens", strconv.FormatInt(respLocal+100, 10)},
			localIn: respLocal, localOut: out, wantIn: respLocal + 100, wantOut: out, wantDrift: true},
		{name: "embeddings drift", path: "/v1/embeddings", model: "text-embedding-3-small", body: emb,
			headers: []string{"X-Mock-Prompt-Tokens", strconv.FormatInt(embLocal*3, 10)},
			localIn: embLocal, wantIn: 3 * embLocal, wantDrift: true},
		{name: "embeddings within tolerance", path: "/v1/embeddings", model: "text-embedding-3-small", body: emb,
			headers: []string{"X-Mock-Prompt-Tokens", strconv.FormatInt(embLocal+1, 10)},
			localIn: embLocal, wantIn: embLocal + 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.localIn < 10 {
				t.Fatalf("local input %d: too small for the tolerance cases", tc.localIn)
			}
			account := "drift-" + strconv.Itoa(i)
			key := h.account(account, "100.00")
			res := h.post(tc.path, key, tc.body, tc.headers...)
			if body := readAll(t, res); res.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", res.StatusCode, body)
			}
			checkDrift(t, h, rec, account, tc.model, driftWant{
				billed: metering.Tokens{Input: tc.wantIn, Output: tc.wantOut},
				local:  metering.Tokens{Input: tc.localIn, Output: tc.localOut},
				drift:  tc.wantDrift,
			})
		})
	}
}

type driftWant struct {
	billed, local metering.Tokens
	drift         bool
}

// checkDrift checks an account's one request: its ledger event (billed by upstream
// usage, local counts recorded), its log line and its Report.
func checkDrift(t *testing.T, h *harness, rec *reportRecorder, account, model string, w driftWant) {
	t.Helper()
	ev := h.lastEvent(account)
	got := metering.Tokens{Input: ev.PromptTokens, CachedInput: ev.CachedTokens, Output: ev.CompletionTokens, Reasoning: ev.ReasoningTokens}
	if ev.Type != billing.EventUsage || ev.TokenSource != billing.TokenSourceUpstream || got != w.billed {
		t.Errorf("billed %+v from %s, want %+v from upstream", got, ev.TokenSource, w.billed)
	}
	if want := mustPrice(t, h, model).Cost(w.billed); ev.Cost != want {
		t.Errorf("cost %s, want %s (the upstream's usage priced)", ev.Cost, want)
	}
	if ev.LocalPromptTokens != w.local.Input || ev.LocalCompletionTokens != w.local.Output {
		t.Errorf("ledger local counts %d/%d, want %d/%d", ev.LocalPromptTokens, ev.LocalCompletionTokens, w.local.Input, w.local.Output)
	}

	level, line := requestLogEntry(t, h, account)
	wantLevel := zapcore.InfoLevel
	if w.drift {
		wantLevel = zapcore.WarnLevel
	}
	if level != wantLevel {
		t.Errorf("log level %s, want %s", level, wantLevel)
	}
	if flag, ok := line["token_drift"]; w.drift != ok || (ok && flag != true) {
		t.Errorf("token_drift = %v (present %v), want present and true iff drift (%v)", flag, ok, w.drift)
	}
	for key, want := range map[string]int64{
		"prompt_tokens": w.billed.Input, "completion_tokens": w.billed.Output,
		"local_prompt_tokens": w.local.Input, "local_completion_tokens": w.local.Output,
	} {
		if got := int64Field(line, key); got != want {
			t.Errorf("log %s = %v, want %d", key, line[key], want)
		}
	}
	if line["token_source"] != billing.TokenSourceUpstream {
		t.Errorf("log token_source = %v", line["token_source"])
	}

	rep := rec.last(t)
	if rep.Drift != w.drift || rep.Tokens != w.billed || rep.Local != w.local {
		t.Errorf("report drift %v tokens %+v local %+v, want %v %+v %+v", rep.Drift, rep.Tokens, rep.Local, w.drift, w.billed, w.local)
	}
}

// The cookbook's conversation (metering's request_test.go, from OpenAI's "How to count
// tokens with tiktoken", section 6) was counted by the OpenAI API itself as 124
// prompt tokens for gpt-4o (o200k_base) and 129 for gpt-4 (cl100k_base). Here the mock
// reports those published numbers (not a count made by either side's code): the proxy's
// own count must agree, so there is no drift; reported a token per message higher, it
// still agrees within the tolerance; reported 50% higher, it drifts.
func TestTokenDriftAgainstCookbookCounts(t *testing.T) {
	const messages = `[
  {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
  {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
  {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
  {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
  {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
  {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."}
]`
	const out = 16
	h, rec := driftHarness(t)
	tests := []struct {
		model     string
		cookbook  int64 // the API's count, as printed in the cookbook
		reported  int64
		stream    bool
		wantDrift bool
	}{
		{model: "gpt-4o", cookbook: 124, reported: 124},
		{model: "gpt-4o", cookbook: 124, reported: 124, stream: true},
		{model: "gpt-4", cookbook: 129, reported: 129},
		{model: "gpt-4", cookbook: 129, reported: 129, stream: true},
		{model: "gpt-4o", cookbook: 124, reported: 124 + 6},
		{model: "gpt-4", cookbook: 129, reported: 129 * 3 / 2, wantDrift: true},
		{model: "gpt-4o", cookbook: 124, reported: 124 * 3 / 2, stream: true, wantDrift: true},
	}
	for i, tc := range tests {
		name := tc.model + "/reported-" + strconv.FormatInt(tc.reported, 10)
		if tc.stream {
			name += "/stream"
		}
		t.Run(name, func(t *testing.T) {
			body := `{"model":"` + tc.model + `","max_tokens":100,"messages":` + messages
			if tc.stream {
				body += `,"stream":true`
			}
			body += "}"
			account := "cookbook-" + strconv.Itoa(i)
			key := h.account(account, "100.00")
			res := h.post("/v1/chat/completions", key, body, "X-Mock-Prompt-Tokens", strconv.FormatInt(tc.reported, 10))
			if b := readAll(t, res); res.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", res.StatusCode, b)
			}
			checkDrift(t, h, rec, account, tc.model, driftWant{
				billed: metering.Tokens{Input: tc.reported, Output: out},
				local:  metering.Tokens{Input: tc.cookbook, Output: out},
				drift:  tc.wantDrift,
			})
		})
	}
	// Without the override, the mock's own count (its formula, tiktoken-exact) is the
	// cookbook's too.
	for _, model := range []string{"gpt-4o", "gpt-4"} {
		account := "cookbook-plain-" + strings.ReplaceAll(model, ".", "")
		key := h.account(account, "100.00")
		res := h.post("/v1/chat/completions", key, `{"model":"`+model+`","messages":`+messages+`}`)
		readAll(t, res)
		want := map[string]int64{"gpt-4o": 124, "gpt-4": 129}[model]
		if ev := h.lastEvent(account); ev.PromptTokens != want || ev.LocalPromptTokens != want {
			t.Errorf("%s: mock reported %d, proxy counted %d, the API %d", model, ev.PromptTokens, ev.LocalPromptTokens, want)
		}
	}
}
