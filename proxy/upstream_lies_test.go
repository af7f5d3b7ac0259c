package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// lastLogLine returns the account's one request log line and its level.
func lastLogLine(t *testing.T, h *harness, account string) (zapcore.Level, map[string]any) {
	t.Helper()
	return requestLogEntry(t, h, account)
}

// An upstream that writes past the cap it was sent: the stream is cut at the cap,
// ended with finish_reason length, the usage the app asked for and [DONE]; the
// request is billed for the prompt and the cap, and what the upstream sent past it
// is recorded as excess, in the ledger event and a warning.
func TestStreamPastTheCapIsCut(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	body := chatBody("gpt-4o-mini", true, `"max_tokens":5,"stream_options":{"include_usage":true}`)
	res := h.post("/v1/chat/completions", key, body, "X-Mock-Ignore-Cap", "20", "X-Mock-Event-Delay", "5ms")
	out := readAll(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, out)
	}
	events := sseEvents(out)
	var text strings.Builder
	var finish string
	var usage *chatUsage
	for _, e := range events {
		var c struct {
			Choices []struct {
				Delta        struct{ Content string }
				FinishReason *string `json:"finish_reason"`
			}
			Usage *chatUsage
		}
		if e == "[DONE]" {
			continue
		}
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			usage = c.Usage
		}
	}
	tok, _ := metering.TokenizerFor(metering.O200kBase)
	if n := tok.Count(text.String()); n != 5 || finish != "length" || events[len(events)-1] != "[DONE]" {
		t.Fatalf("relayed %d tokens, finish %q, last event %q: want the cap (5), length, [DONE]", n, finish, events[len(events)-1])
	}
	ev := h.lastEvent("acme")
	if usage == nil || usage.CompletionTokens != 5 || usage.PromptTokens != ev.PromptTokens {
		t.Fatalf("usage chunk %+v, event %+v: the app's usage is the billed one", usage, ev)
	}
	price := mustPrice(t, h, "gpt-4o-mini")
	if ev.CompletionTokens != 5 || ev.TokenSource != billing.TokenSourceLocal || ev.ExcessTokens < 1 || ev.Excess <= 0 ||
		ev.Cost != price.Cost(metering.Tokens{Input: ev.PromptTokens, Output: 5}) || !strings.Contains(ev.Note, "output cap") {
		t.Fatalf("event %+v", ev)
	}
	level, line := lastLogLine(t, h, "acme")
	if level != zapcore.WarnLevel || line["reason"] != "output_cap" || line["excess"] != ev.Excess.String() || int64Field(line, "excess_tokens") != ev.ExcessTokens {
		t.Fatalf("log %s %v", level, line)
	}
	// The upstream's request was closed at the cut, before it wrote its 100 words.
	wctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	if err := h.mock.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	if up := h.mock.Requests()[0]; !up.Cancelled || up.Events >= 100 {
		t.Fatalf("the upstream wrote %d events, cancelled %v: the proxy read on after the cut", up.Events, up.Cancelled)
	}
}

// A plain body past the cap is relayed as it is (rewriting JSON is not worth it)
// but billed at most the cap; usage inflated tenfold likewise.
func TestPlainPastTheBoundIsBilledWithinIt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"ignores the cap", []string{"X-Mock-Ignore-Cap", "20"}},
		{"inflates usage", []string{"X-Mock-Inflate-Usage", "10"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			key := h.account("acme", "5.00")
			res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, `"max_tokens":16`), tc.header...)
			body := readAll(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", res.StatusCode, body)
			}
			claimed := decodeUsage(t, body)
			ev := h.lastEvent("acme")
			price := mustPrice(t, h, "gpt-4o-mini")
			bound := price.WorstCase(metering.Tokens{Input: ev.LocalPromptTokens}, 16)
			if ev.CompletionTokens != 16 || ev.PromptTokens > claimed.PromptTokens || ev.Cost > bound ||
				ev.Cost != price.Cost(metering.Tokens{Input: ev.PromptTokens, Output: 16}) {
				t.Fatalf("event %+v; claimed %+v; bound %s", ev, claimed, bound)
			}
			if want := price.Cost(tokensOf(claimed)) - ev.Cost; ev.Excess != want ||
				ev.ExcessTokens != claimed.PromptTokens+claimed.CompletionTokens-ev.PromptTokens-ev.CompletionTokens {
				t.Fatalf("excess %s (%d tokens), want %s", ev.Excess, ev.ExcessTokens, want)
			}
			if a := h.get("acme"); a.Balance() != usd("5.00")-ev.Cost || a.Reserved != 0 {
				t.Fatalf("account %+v", a)
			}
			if r, err := billing.AuditAccount(h.ctx, h.store, "acme"); err != nil || !r.OK() {
				t.Fatalf("audit %+v %v", r, err)
			}
		})
	}
}

// An HTML page (a captive portal, a proxy's error page) answered 200 is not relayed:
// the app gets 502 upstream_invalid_response, in OpenAI's error shape for a plain
// request and as an error event in a stream; nothing is charged.
func TestHTMLAnswerIs502(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""), "X-Mock-HTML", "1")
	body := readAll(t, res)
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal(body, &e); err != nil || res.StatusCode != http.StatusBadGateway ||
		e.Error.Code != "upstream_invalid_response" || e.Error.Type != "server_error" || strings.Contains(string(body), "html") {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventRelease {
		t.Fatalf("last event %+v, want the release", ev)
	}
	_, line := lastLogLine(t, h, "acme")
	if int64Field(line, "status") != 502 || int64Field(line, "upstream_status") != 200 || line["reason"] != "upstream_invalid_response" {
		t.Fatalf("log %v", line)
	}
	if a := h.get("acme"); a.Balance() != usd("5.00") || a.Reserved != 0 {
		t.Fatalf("charged: %+v", a)
	}
}

// A server that labels a stream text/event-stream but sends something else: the app
// gets one error event, nothing is charged.
func TestStreamThatIsNotSSE(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	upstream := h.upstream.Config.Handler
	h.upstream.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "<html><body>Bad gateway</body></html>\n")
	})
	defer func() { h.upstream.Config.Handler = upstream }()
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", true, ""))
	events := sseEvents(readAll(t, res))
	if len(events) != 1 || !strings.Contains(events[0], `"code":"upstream_invalid_response"`) {
		t.Fatalf("events %q", events)
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventRelease {
		t.Fatalf("last event %+v", ev)
	}
	if _, line := lastLogLine(t, h, "acme"); int64Field(line, "status") != 502 || line["reason"] != "upstream_invalid_response" {
		t.Fatalf("log %v", line)
	}
}

// A plain body the upstream cut mid-way: the app gets nothing usable (its request
// fails); it is billed as a
// disconnect (the prompt and the output relayed, counted locally), and logged as a
// 502 with reason upstream_cut.
func TestPlainBodyCutMidway(t *testing.T) {
	h := newHarness(t)
	h.mock.OutputTokens = 200
	key := h.account("acme", "5.00")
	full := readAll(t, h.post("/v1/chat/completions", h.account("other", "5.00"), chatBody("gpt-4o-mini", false, "")))
	cut := strings.Index(string(full), `"content":"`) + 200 // the headers, then 200 bytes into the text
	req, _ := http.NewRequest(http.MethodPost, h.server.URL+"/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", false, "")))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Mock-Cut-Body", itoa(int64(cut)))
	// The proxy buffers a plain body's start: the dropped connection may reach the app
	// before the headers do, or after a part of the body.
	if res, err := http.DefaultClient.Do(req); err == nil {
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Fatalf("the app read %d bytes (%d) without an error", len(got), res.StatusCode)
		}
	}
	ev := h.lastEvent("acme")
	if ev.Type != billing.EventUsage || ev.TokenSource != billing.TokenSourceLocal || ev.PromptTokens == 0 ||
		ev.CompletionTokens < 20 || ev.CompletionTokens >= 200 || !strings.Contains(ev.Note, "broke the response off") {
		t.Fatalf("event %+v: want the prompt and the ~40 words relayed, counted locally", ev)
	}
	level, line := lastLogLine(t, h, "acme")
	if level != zapcore.WarnLevel || int64Field(line, "status") != 502 || int64Field(line, "upstream_status") != 200 || line["reason"] != "upstream_cut" {
		t.Fatalf("log %s %v", level, line)
	}
}

// A plain answer whose body ends before its first byte: answered like an upstream
// that failed (502), nothing charged.
func TestPlainBodyCutBeforeItsFirstByte(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	h.upstream.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""))
	body := readAll(t, res)
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "upstream_unreachable") {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if a := h.get("acme"); a.Balance() != usd("5.00") || a.Reserved != 0 {
		t.Fatalf("charged: %+v", a)
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventRelease {
		t.Fatalf("last event %+v", ev)
	}
}

// What a 2xx body must look like to be relayed: by its Content-Type, then its first
// bytes.
func TestBodyStartChecks(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		want bool
	}{
		{"application/json", true}, {"application/json; charset=utf-8", true}, {"Application/JSON", true},
		{"", true}, {"text/plain; charset=utf-8", true}, {"application/problem+json", true},
		{"text/html; charset=UTF-8", false}, {"application/xml", false}, {"+json", false}, {"text/event-stream", false},
	} {
		if got := jsonContentType(tc.ct); got != tc.want {
			t.Errorf("jsonContentType(%q) = %v", tc.ct, got)
		}
	}
	for _, tc := range []struct {
		head           string
		complete       bool
		json, jsonKnow bool
		sse, sseKnow   bool
	}{
		{head: `{"id":`, json: true, jsonKnow: true, sseKnow: true},
		{head: "\ufeff \n {", json: true, jsonKnow: true, sseKnow: true},
		{head: "  ", jsonKnow: false, sseKnow: false},
		{head: "  ", complete: true, jsonKnow: true, sseKnow: true},
		{head: "<!DOCTYPE html>", jsonKnow: true, sseKnow: false},
		{head: "<!DOCTYPE html>\n", jsonKnow: true, sseKnow: true},
		{head: "data: {}", jsonKnow: true, sse: true, sseKnow: true},
		{head: "\n\nevent: response.created\n", jsonKnow: true, sse: true, sseKnow: true},
		{head: ": keep-alive\n", jsonKnow: true, sse: true, sseKnow: true},
		{head: "retry: 10\n", jsonKnow: true, sse: true, sseKnow: true},
		{head: "dat", jsonKnow: true, sseKnow: false},
		{head: "", complete: true, jsonKnow: true, sseKnow: true},
	} {
		if ok, known := startsJSON([]byte(tc.head), tc.complete); ok != tc.json || known != tc.jsonKnow {
			t.Errorf("startsJSON(%q, %v) = %v, %v", tc.head, tc.complete, ok, known)
		}
		if ok, known := startsSSE([]byte(tc.head), tc.complete); ok != tc.sse || known != tc.sseKnow {
			t.Errorf("startsSSE(%q, %v) = %v, %v", tc.head, tc.complete, ok, known)
		}
	}
}
