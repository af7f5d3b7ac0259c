package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditgate/creditgate/billing"
)

// The exact 429 OpenAI sends for an exhausted quota.
const openAIQuotaBody = `{
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": null,
        "code": "insufficient_quota"
    }
}
`

func TestQuotaExceededIsOpenAIsByteForByte(t *testing.T) {
	h := newHarness(t)
	empty := h.account("empty")
	res := h.post("/v1/chat/completions", empty, chatBody("gpt-4o-mini", false, ""))
	body := readAll(t, res)
	if res.StatusCode != http.StatusTooManyRequests || string(body) != openAIQuotaBody {
		t.Fatalf("status %d body:\n%s", res.StatusCode, body)
	}
	if res.Header.Get("Retry-After") != "" || res.Header.Get(ReasonHeader) != "empty" || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", res.Header)
	}
	if n := len(h.mock.Requests()); n != 0 {
		t.Fatalf("a refused request reached the upstream (%d requests)", n)
	}
	if logs := h.requestLogs(); len(logs) != 1 || logs[0]["status"] != int64(429) || logs[0]["reason"] != "empty" {
		t.Fatalf("logs %v", logs)
	}
}

// TestQuotaExceededByExpiry: credit that expired gives the same OpenAI body, with
// the reason header saying "expired".
func TestQuotaExceededByExpiry(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme")
	const life = 100 * time.Millisecond
	if _, err := h.store.TopUp(h.ctx, testPolicy, billing.TopUpRequest{Account: "acme", GrantID: "promo", Amount: usd("5.00"),
		ExpiresAt: time.Now().Add(life)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(life) // let the grant expire (the store's clock is real time here)
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""))
	body := readAll(t, res)
	if res.StatusCode != http.StatusTooManyRequests || string(body) != openAIQuotaBody || res.Header.Get(ReasonHeader) != billing.ReasonExpired {
		t.Fatalf("after expiry: %d %s %q", res.StatusCode, body, res.Header.Get(ReasonHeader))
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventExpire || ev.GrantID != "promo" {
		t.Fatalf("last event %+v, want the grant's expiry", ev)
	}
}

func TestRequestErrors(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxBodyBytes = 4096 })
	key := h.account("acme", "5.00")
	tests := []struct {
		name       string
		method     string
		path       string
		key        string
		body       string
		wantStatus int
		wantType   string
		wantCode   string
		wantParam  string
	}{
		{name: "malformed JSON", path: "/v1/chat/completions", key: key, body: `{"model":"gpt-4o-mini","messages":[`, wantStatus: 400, wantType: "invalid_request_error"},
		{name: "missing model", path: "/v1/chat/completions", key: key, body: `{"messages":[{"role":"user","content":"hi"}]}`, wantStatus: 400, wantType: "invalid_request_error", wantParam: "model"},
		{name: "unpriced model", path: "/v1/chat/completions", key: key, body: chatBody("gpt-imaginary", false, ""), wantStatus: 400, wantType: "invalid_request_error", wantCode: "model_not_found", wantParam: "model"},
		{name: "negative max_tokens", path: "/v1/chat/completions", key: key, body: chatBody("gpt-4o-mini", false, `"max_tokens":-1`), wantStatus: 400, wantType: "invalid_request_error", wantParam: "max_tokens"},
		{name: "body over the limit", path: "/v1/chat/completions", key: key, body: chatBody("gpt-4o-mini", false, `"user":"`+strings.Repeat("x", 5000)+`"`), wantStatus: 413, wantType: "invalid_request_error", wantCode: "request_too_large"},
		{name: "no key", path: "/v1/chat/completions", body: chatBody("gpt-4o-mini", false, ""), wantStatus: 401, wantType: "invalid_request_error", wantCode: "invalid_api_key"},
		{name: "unknown key", path: "/v1/chat/completions", key: "sk-cg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", body: chatBody("gpt-4o-mini", false, ""), wantStatus: 401, wantType: "invalid_request_error", wantCode: "invalid_api_key"},
		{name: "an OpenAI key", path: "/v1/chat/completions", key: "sk-proj-abcdef", body: chatBody("gpt-4o-mini", false, ""), wantStatus: 401, wantType: "invalid_request_error", wantCode: "invalid_api_key"},
		{name: "unknown path", path: "/v1/fine_tuning/jobs", key: key, body: `{}`, wantStatus: 404, wantType: "invalid_request_error", wantCode: "unknown_url"},
		{name: "wrong method", method: http.MethodGet, path: "/v1/chat/completions", key: key, wantStatus: 404, wantType: "invalid_request_error", wantCode: "unknown_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, h.server.URL+tc.path, strings.NewReader(tc.body))
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, res)
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("not OpenAI's error shape: %s", body)
			}
			code, param := "", ""
			if e.Error.Code != nil {
				code = *e.Error.Code
			}
			if e.Error.Param != nil {
				param = *e.Error.Param
			}
			if res.StatusCode != tc.wantStatus || e.Error.Type != tc.wantType || code != tc.wantCode || param != tc.wantParam || e.Error.Message == "" {
				t.Fatalf("got %d %s code=%q param=%q; want %d %s code=%q param=%q\n%s", res.StatusCode, e.Error.Type, code, param, tc.wantStatus, tc.wantType, tc.wantCode, tc.wantParam, body)
			}
		})
	}
	if n := len(h.mock.Requests()); n != 0 {
		t.Fatalf("%d rejected requests reached the upstream", n)
	}
	if a := h.get("acme"); a.Balance() != usd("5.00") || a.Reserved != 0 {
		t.Fatalf("rejected requests changed the account: %+v", a)
	}
}

// The 429 is an apiError like any other, and writeError answers it with OpenAI's
// body byte for byte, the reason header and no Retry-After.
func TestQuotaExceededErrorIsOpenAIsBody(t *testing.T) {
	for _, reason := range []string{billing.ReasonEmpty, billing.ReasonExpired, billing.ReasonInsufficient} {
		t.Run(reason, func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeError(rec, errQuotaExceeded(reason))
			if rec.Code != http.StatusTooManyRequests || rec.Body.String() != openAIQuotaBody || QuotaExceededBody != openAIQuotaBody {
				t.Fatalf("status %d body:\n%s", rec.Code, rec.Body)
			}
			h := rec.Header()
			if h.Get(ReasonHeader) != reason || h.Get("Retry-After") != "" || h.Get("Content-Type") != "application/json" ||
				h.Get("Content-Length") != strconv.Itoa(len(openAIQuotaBody)) {
				t.Fatalf("headers %v", h)
			}
		})
	}
	rec := httptest.NewRecorder()
	writeError(rec, errInvalidKey())
	if rec.Header().Get(ReasonHeader) != "" {
		t.Fatalf("a 401 carries %s: %v", ReasonHeader, rec.Header())
	}
}

// storeError is the one map from store errors to answers: 503 for an outage (fail
// closed), 401 for a key or account that is gone, 500 (logged, without the key)
// for anything else.
func TestStoreError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantLogged bool
	}{
		{name: "unavailable", err: fmt.Errorf("reserve: %w", billing.ErrUnavailable), wantStatus: 503, wantCode: "billing_unavailable"},
		{name: "key not found", err: billing.ErrKeyNotFound, wantStatus: 401, wantCode: "invalid_api_key"},
		{name: "account not found", err: fmt.Errorf("get: %w", billing.ErrAccountNotFound), wantStatus: 401, wantCode: "invalid_api_key"},
		{name: "anything else", err: errors.New("WRONGTYPE"), wantStatus: 500, wantLogged: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			p := &Proxy{log: zap.New(core)}
			aerr := p.storeError(tc.err, "reserve failed", zap.String("request_id", "req_1"))
			if aerr.status != tc.wantStatus || aerr.code != tc.wantCode {
				t.Fatalf("got %d %q, want %d %q", aerr.status, aerr.code, tc.wantStatus, tc.wantCode)
			}
			got := logs.All()
			if !tc.wantLogged {
				if len(got) != 0 {
					t.Fatalf("logged %v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Message != "reserve failed" || got[0].Level != zap.ErrorLevel ||
				got[0].ContextMap()["request_id"] != "req_1" || got[0].ContextMap()["error"] != "WRONGTYPE" {
				t.Fatalf("logs %v", got)
			}
		})
	}
}
