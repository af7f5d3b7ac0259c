package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Hostile and malformed bodies through the real proxy: each gets a clear error
// in OpenAI's shape naming the parameter at fault, with no panic, no charge and
// nothing forwarded.
func TestBadInputIsRefusedBeforeForwarding(t *testing.T) {
	deep := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":` + strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100) + `}`
	manyMessages := `{"model":"gpt-4o-mini","messages":[` + strings.Repeat(`{"role":"user","content":""},`, 100_000) + `{"role":"user","content":""}]}`
	msg := func(extra string) string {
		return `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]` + extra + `}`
	}
	tests := []struct {
		name      string
		body      string
		status    int
		wantParam string // "" = any (or none)
		wantIn    string // a word the message must contain
	}{
		{name: "body over the cap", body: msg(`,"user":"` + strings.Repeat("x", 70_000) + `"`), status: 413, wantIn: "too large"},
		{name: "not JSON", body: `model=gpt-4o-mini`, status: 400, wantIn: "JSON"},
		{name: "truncated JSON", body: `{"model":"gpt-4o-mini","messages":[`, status: 400, wantIn: "JSON"},
		{name: "trailing garbage", body: msg("") + `{}`, status: 400, wantIn: "JSON"},
		{name: "not an object", body: `[1,2,3]`, status: 400, wantIn: "object"},
		{name: "deeply nested", body: deep, status: 400, wantIn: "nested"},
		{name: "too many messages", body: manyMessages, status: 400, wantParam: "messages"},
		{name: "duplicate max_tokens", body: msg(`,"max_tokens":1,"max_tokens":100000`), status: 400, wantParam: "max_tokens", wantIn: "Duplicate"},
		{name: "duplicate model", body: `{"model":"gpt-4o-mini","model":"gpt-4","messages":[{"role":"user","content":"hi"}]}`, status: 400, wantParam: "model"},
		{name: "duplicate key by escape", body: msg(`,"max_tokens":1,"max_tok\u0065ns":100000`), status: 400, wantParam: "max_tokens"},
		{name: "duplicate stream", body: msg(`,"stream":false,"stream":true`), status: 400, wantParam: "stream"},
		{name: "duplicate include_usage", body: msg(`,"stream":true,"stream_options":{"include_usage":false,"include_usage":true}`), status: 400, wantParam: "stream_options.include_usage"},
		{name: "huge max_tokens", body: msg(`,"max_tokens":100000000000000000000`), status: 400, wantParam: "max_tokens"},
		{name: "max_tokens above int32", body: msg(`,"max_tokens":2147483648`), status: 400, wantParam: "max_tokens"},
		{name: "negative max_tokens", body: msg(`,"max_tokens":-5`), status: 400, wantParam: "max_tokens"},
		{name: "zero max_completion_tokens", body: msg(`,"max_completion_tokens":0`), status: 400, wantParam: "max_completion_tokens"},
		{name: "fractional max_tokens", body: msg(`,"max_tokens":1.5`), status: 400, wantParam: "max_tokens"},
		{name: "exponent max_tokens", body: msg(`,"max_tokens":1e3`), status: 400, wantParam: "max_tokens"},
		{name: "string max_tokens", body: msg(`,"max_tokens":"16"`), status: 400, wantParam: "max_tokens"},
		{name: "negative n", body: msg(`,"n":-1`), status: 400, wantParam: "n"},
		{name: "huge n", body: msg(`,"n":1000000`), status: 400, wantParam: "n"},
		{name: "fractional n", body: msg(`,"n":2.5`), status: 400, wantParam: "n"},
		{name: "model not a string", body: `{"model":42,"messages":[{"role":"user","content":"hi"}]}`, status: 400, wantParam: "model"},
		{name: "no model", body: `{"messages":[{"role":"user","content":"hi"}]}`, status: 400, wantParam: "model"},
		{name: "unpriced model", body: `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`, status: 400, wantParam: "model"},
		{name: "messages not an array", body: `{"model":"gpt-4o-mini","messages":"hi"}`, status: 400, wantParam: "messages"},
		{name: "message without role", body: `{"model":"gpt-4o-mini","messages":[{"content":"hi"}]}`, status: 400, wantParam: "messages[0].role"},
		{name: "control character in a string", body: "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"a\x01b\"}]}", status: 400, wantIn: "JSON"},
		{name: "bad escape", body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\x"}]}`, status: 400, wantIn: "JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.MaxBodyBytes = 64 << 10 })
			if tc.name == "too many messages" {
				h = newHarness(t) // the body is ~3 MB: under the default cap
			}
			key := h.account("acme", "5.00")
			res := h.post("/v1/chat/completions", key, tc.body)
			body := readAll(t, res)
			checkRefusal(t, h, res, body, tc.status, tc.wantParam, tc.wantIn)
		})
	}
}

// checkRefusal asserts an OpenAI-shaped refusal, and that nothing was forwarded
// or booked.
func checkRefusal(t *testing.T, h *harness, res *http.Response, body []byte, status int, param, word string) {
	t.Helper()
	var e struct {
		Error struct {
			Message string
			Type    string
			Param   *string
			Code    *string
		}
	}
	if res.StatusCode != status || json.Unmarshal(body, &e) != nil || e.Error.Type != typeInvalidRequest || e.Error.Message == "" {
		t.Fatalf("status %d, body %s; want %d invalid_request_error", res.StatusCode, body, status)
	}
	if param != "" && (e.Error.Param == nil || *e.Error.Param != param) {
		t.Fatalf("param %v, want %q: %s", e.Error.Param, param, body)
	}
	if word != "" && !strings.Contains(strings.ToLower(e.Error.Message), strings.ToLower(word)) {
		t.Fatalf("message %q does not mention %q", e.Error.Message, word)
	}
	if n := len(h.mock.Requests()); n != 0 {
		t.Fatalf("%d requests forwarded", n)
	}
	a := h.get("acme")
	if a.Reserved != 0 || a.Totals.Usage != 0 || len(h.events("acme")) != 1 {
		t.Fatalf("refused request touched the ledger: %+v", a)
	}
	logs := h.requestLogs()
	if len(logs) != 1 || logs[0]["status"] != int64(status) {
		t.Fatalf("want one request log line with status %d: %v", status, logs)
	}
}

// The other endpoints refuse the same way.
func TestBadInputOnEveryEndpoint(t *testing.T) {
	tests := []struct {
		path, body string
		param      string
	}{
		{"/v1/completions", `{"model":"gpt-4o-mini","prompt":"hi","max_tokens":-1}`, "max_tokens"},
		{"/v1/completions", `{"model":"gpt-4o-mini","prompt":"hi","best_of":1000}`, "best_of"},
		{"/v1/completions", `{"model":"gpt-4o-mini","prompt":[[1,2,-3]]}`, ""},
		{"/v1/embeddings", `{"model":"text-embedding-3-small","input":{"a":1}}`, "input"},
		{"/v1/embeddings", `{"model":"text-embedding-3-small"}`, "input"},
		{"/v1/responses", `{"model":"gpt-4o-mini","input":"hi","max_output_tokens":1.5}`, "max_output_tokens"},
		{"/v1/responses", `{"model":"gpt-4o-mini","input":"hi","max_output_tokens":99999999999}`, "max_output_tokens"},
	}
	for _, tc := range tests {
		t.Run(tc.path+" "+tc.body, func(t *testing.T) {
			h := newHarness(t)
			key := h.account("acme", "5.00")
			res := h.post(tc.path, key, tc.body)
			checkRefusal(t, h, res, readAll(t, res), 400, tc.param, "")
		})
	}
}

// TestMessageLimits: limits.max_messages and limits.max_message_bytes refuse a
// request with OpenAI's 400 before anything is reserved or forwarded.
func TestMessageLimits(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxMessages, o.MaxMessageBytes = 3, 100 })
	key := h.account("acme", "5.00")
	msg := func(text string) string { return `{"role":"user","content":"` + text + `"}` }
	tests := []struct {
		name, path, body string
		wantStatus       int
		wantCode         string
		wantParam        string
	}{
		{name: "three messages", path: "/v1/chat/completions", wantStatus: 200,
			body: `{"model":"gpt-4o-mini","max_tokens":5,"messages":[` + msg("a") + "," + msg("b") + "," + msg("c") + `]}`},
		{name: "four messages", path: "/v1/chat/completions", wantStatus: 400, wantCode: "array_above_max_length", wantParam: "messages",
			body: `{"model":"gpt-4o-mini","messages":[` + msg("a") + "," + msg("b") + "," + msg("c") + "," + msg("d") + `]}`},
		{name: "one message too long", path: "/v1/chat/completions", wantStatus: 400, wantCode: "string_above_max_length", wantParam: "messages",
			body: `{"model":"gpt-4o-mini","messages":[` + msg(strings.Repeat("x", 100)) + `]}`},
		{name: "four embedding inputs", path: "/v1/embeddings", wantStatus: 400, wantCode: "array_above_max_length", wantParam: "input",
			body: `{"model":"text-embedding-3-small","input":["a","b","c","d"]}`},
		{name: "token ids are one input", path: "/v1/embeddings", wantStatus: 200,
			body: `{"model":"text-embedding-3-small","input":[1,2,3,4,5,6,7,8]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.mock.Requests())
			res := h.post(tc.path, key, tc.body)
			body := readAll(t, res)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			if tc.wantStatus == 200 {
				return
			}
			if !strings.Contains(string(body), `"code": "`+tc.wantCode+`"`) || !strings.Contains(string(body), `"param": "`+tc.wantParam+`"`) {
				t.Fatalf("body %s", body)
			}
			if len(h.mock.Requests()) != before {
				t.Fatal("a refused request reached the upstream")
			}
		})
	}
	if a := h.get("acme"); a.Reserved != 0 {
		t.Fatalf("reserved %s", a.Reserved)
	}
}
