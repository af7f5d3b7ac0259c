package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/metering"
)

// Admission's rules, each on its own: a Proxy over fake stores, no HTTP server.

const ruleKey = "sk-cg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// ruleProxy is a Proxy over the given fake ledger, with one known key (ruleKey, of
// account "acme") and the harness's prices.
func ruleProxy(t *testing.T, ledger *billingtest.Ledger, clamp bool, opts ...harnessOption) *Proxy {
	t.Helper()
	keys := &billingtest.Keys{LookupKeyFunc: func(_ context.Context, h billing.KeyHash) (billing.APIKey, error) {
		if h != billing.HashKey(ruleKey) {
			return billing.APIKey{}, billing.ErrKeyNotFound
		}
		return billing.APIKey{ID: "key_1", Account: "acme"}, nil
	}}
	settings := &Settings{Policy: testPolicy, Pricing: testPricing(t), ClampMaxTokens: clamp}
	u, _ := url.Parse("http://upstream.invalid/v1")
	o := Options{Upstream: u, Ledger: ledger, Keys: keys, Settings: func() *Settings { return settings },
		Logger: zap.NewNop(), KeyCacheTTL: time.Minute}
	for _, f := range opts {
		f(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ruleExchange is x for a POST of body to path with ruleKey, as serveMetered starts it.
func ruleExchange(p *Proxy, path, body string) *exchange {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+ruleKey)
	ep, _ := metering.EndpointForPath(path)
	return &exchange{id: "req_1", start: p.opts.Now(), endpoint: ep, settings: p.opts.Settings(), in: r, w: httptest.NewRecorder()}
}

// runRules runs the given rules of admit on x, which must all pass.
func runRules(t *testing.T, p *Proxy, x *exchange, rules ...func(*Proxy, *exchange) *apiError) {
	t.Helper()
	for _, rule := range rules {
		if aerr := rule(p, x); aerr != nil {
			t.Fatalf("rule refused: %d %s", aerr.status, aerr.message)
		}
	}
}

// untilReserve are the rules before reserve.
var untilReserve = []func(*Proxy, *exchange) *apiError{(*Proxy).authenticateKey, (*Proxy).readBody,
	(*Proxy).parseBody, (*Proxy).checkItems, (*Proxy).priceModel, (*Proxy).countPrompt, (*Proxy).estimate}

// The grace/clamp rule: what reserve asks of the ledger, and what it makes of the
// answer.
func TestReserveRule(t *testing.T) {
	chat := chatBody("dear", false, "")                  // dear: 4,096 output tokens at most, $0.002 each
	responses := `{"model":"dear","input":"Say hello."}` // at least 16 output tokens
	tests := []struct {
		name        string
		path, body  string
		clamp       bool
		held        func(x *exchange) int64 // output tokens the hold pays for per choice; -1: the whole estimate
		admitted    bool
		reason      string
		limitedBy   string // the partial hold's Reservation.LimitedBy
		storeErr    error
		wantStatus  int // 0: admitted
		wantReason  string
		wantClamped int64
		wantRelease bool
		wantNote    string // the release's note ("": the hold too small)
	}{
		{name: "fits: held whole, cap untouched", path: "/v1/chat/completions", body: chat, clamp: true, admitted: true,
			held: func(*exchange) int64 { return -1 }},
		{name: "clamp off: the minimum is the estimate", path: "/v1/chat/completions", body: chat, clamp: false, admitted: true,
			held: func(*exchange) int64 { return -1 }},
		{name: "smaller hold: the cap lowered to what it pays for", path: "/v1/chat/completions", body: chat, clamp: true, admitted: true,
			held: func(*exchange) int64 { return 40 }, wantClamped: 40},
		{name: "responses: a hold for 16 goes with 16", path: "/v1/responses", body: responses, clamp: true, admitted: true,
			held: func(*exchange) int64 { return 16 }, wantClamped: 16},
		{name: "responses: a hold for 15 is released and refused", path: "/v1/responses", body: responses, clamp: true, admitted: true,
			held: func(*exchange) int64 { return 15 }, wantStatus: 429, wantReason: billing.ReasonInsufficient, wantRelease: true},
		{name: "a hold for 15 the key's limit bounded: the key-limit refusal", path: "/v1/responses", body: responses, clamp: true, admitted: true,
			held: func(*exchange) int64 { return 15 }, limitedBy: billing.ReasonKeyLimit, wantStatus: 429, wantReason: billing.ReasonKeyLimit, wantRelease: true},
		{name: "a hold for 15 the monthly cap bounded: the spend-limit refusal", path: "/v1/responses", body: responses, clamp: true, admitted: true,
			held: func(*exchange) int64 { return 15 }, limitedBy: billing.ReasonSpendLimit, wantStatus: 429, wantReason: billing.ReasonSpendLimit, wantRelease: true},
		{name: "not admitted: 429 with the ledger's reason", path: "/v1/chat/completions", body: chat, clamp: true,
			reason: billing.ReasonExpired, wantStatus: 429, wantReason: billing.ReasonExpired},
		{name: "store down: 503, the hold id released in case the reserve was applied", path: "/v1/chat/completions", body: chat, clamp: true,
			storeErr: billing.ErrUnavailable, wantStatus: 503, wantRelease: true, wantNote: "reserve failed: answered 503"},
		{name: "account gone: 401", path: "/v1/chat/completions", body: chat, clamp: true, storeErr: billing.ErrAccountNotFound, wantStatus: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got billing.ReserveRequest
			var released []string
			var x *exchange
			ledger := &billingtest.Ledger{
				ReserveFunc: func(_ context.Context, r billing.ReserveRequest) (billing.Reservation, error) {
					got = r
					if tc.storeErr != nil {
						return billing.Reservation{}, tc.storeErr
					}
					res := billing.Reservation{Admitted: tc.admitted, Reason: tc.reason, LimitedBy: tc.limitedBy}
					if tc.admitted {
						res.Held = r.Estimate
						if n := tc.held(x); n >= 0 {
							res.Held = x.price.WorstCase(x.input, n*x.req.Choices)
						}
					}
					return res, nil
				},
				ReleaseFunc: func(_ context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error) {
					released = append(released, account+"/"+holdID+": "+u.Note)
					return billing.Settlement{}, nil
				},
			}
			p := ruleProxy(t, ledger, tc.clamp, countPromptsAlways) // the exact path; the bound's is TestReserveOnPromptBound
			x = ruleExchange(p, tc.path, tc.body)
			runRules(t, p, x, untilReserve...)
			aerr := p.reserve(x)

			floor := x.req.ClampFloor(x.price, x.input)
			wantMinimum := x.estimate
			if tc.clamp {
				wantMinimum = floor
			}
			if got.Account != "acme" || got.HoldID != "req_1" || got.Estimate != x.estimate || got.Minimum != wantMinimum ||
				got.Grace != testPolicy.Grace || got.TTL != testPolicy.HoldTTL || floor >= x.estimate {
				t.Fatalf("reserve asked %+v (estimate %s, floor %s)", got, x.estimate, floor)
			}
			switch {
			case tc.wantStatus == 0 && aerr != nil:
				t.Fatalf("refused: %d %s", aerr.status, aerr.message)
			case tc.wantStatus != 0 && (aerr == nil || aerr.status != tc.wantStatus || aerr.reason != tc.wantReason):
				t.Fatalf("got %+v, want %d reason %q", aerr, tc.wantStatus, tc.wantReason)
			}
			if want := errDenied(tc.wantReason, x.key, p.opts.Now()); tc.wantStatus == 429 && (aerr.code != want.code || aerr.message != want.message) {
				t.Errorf("answered code %q %q, want the %s denial's %q %q", aerr.code, aerr.message, tc.wantReason, want.code, want.message)
			}
			if x.clampedTo != tc.wantClamped {
				t.Fatalf("clampedTo %d, want %d", x.clampedTo, tc.wantClamped)
			}
			note := "hold too small for one output token"
			if tc.wantNote != "" {
				note = tc.wantNote
			}
			if want := tc.wantRelease; (len(released) == 1) != want || want && released[0] != "acme/req_1: "+note {
				t.Fatalf("released %v, want a release: %v", released, want)
			}
		})
	}
}

// A key whose account is gone is dropped from the cache at once: the next request
// asks the key store again.
func TestReserveForgetsTheKeyOfAVanishedAccount(t *testing.T) {
	ledger := &billingtest.Ledger{ReserveFunc: func(context.Context, billing.ReserveRequest) (billing.Reservation, error) {
		return billing.Reservation{}, billing.ErrAccountNotFound
	}}
	p := ruleProxy(t, ledger, true)
	x := ruleExchange(p, "/v1/chat/completions", chatBody("gpt-4o-mini", false, ""))
	runRules(t, p, x, untilReserve...)
	h := billing.HashKey(ruleKey)
	if _, cached := p.keys.entries[h]; !cached {
		t.Fatal("the key was not cached by authentication")
	}
	if aerr := p.reserve(x); aerr == nil || aerr.status != http.StatusUnauthorized || aerr.code != "invalid_api_key" {
		t.Fatalf("got %+v", aerr)
	}
	if _, cached := p.keys.entries[h]; cached {
		t.Fatal("the key of a vanished account is still cached")
	}
}

// A reserve that failed without the store's own refusal may have been applied:
// the rule releases its hold id (once, within its own short timeout, even when
// the app has gone) and answers as the store error says. A refusal (no account,
// an invalid argument) proves nothing was held, and releases nothing.
func TestReserveFailureReleasesTheHoldIDWhenAmbiguous(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		releaseErr  error
		wantRelease bool
		wantStatus  int
	}{
		{"store unavailable (lost reply, timeout)", billing.ErrUnavailable, nil, true, http.StatusServiceUnavailable},
		{"store unavailable, the release fails too", billing.ErrUnavailable, billing.ErrUnavailable, true, http.StatusServiceUnavailable},
		{"a reply that does not decode", errors.New("redisstore: reserve.lua: reply element 2: not a number"), nil, true, http.StatusInternalServerError},
		{"no such account", billing.ErrAccountNotFound, nil, false, http.StatusUnauthorized},
		{"invalid argument", billing.ErrInvalid, nil, false, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var released []string
			ledger := &billingtest.Ledger{
				ReserveFunc: func(context.Context, billing.ReserveRequest) (billing.Reservation, error) {
					return billing.Reservation{}, tt.err
				},
				ReleaseFunc: func(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error) {
					if ctx.Err() != nil {
						t.Errorf("release with a done context: %v", ctx.Err())
					}
					if d, ok := ctx.Deadline(); !ok || time.Until(d) > unsureReleaseTimeout {
						t.Errorf("release deadline %v (set %v), want within %s", time.Until(d), ok, unsureReleaseTimeout)
					}
					if account != "acme" || u.RequestID != holdID || u.Note == "" {
						t.Errorf("release of %s/%s with %+v", account, holdID, u)
					}
					released = append(released, holdID)
					return billing.Settlement{}, tt.releaseErr
				},
			}
			p := ruleProxy(t, ledger, true)
			x := ruleExchange(p, "/v1/chat/completions", chatBody("gpt-4o-mini", false, ""))
			runRules(t, p, x, untilReserve...)
			ctx, cancel := context.WithCancel(x.in.Context())
			x.in = x.in.WithContext(ctx)
			cancel() // the app hung up during the reserve: the release must still run
			aerr := p.reserve(x)
			if aerr == nil || aerr.status != tt.wantStatus {
				t.Fatalf("got %+v, want status %d", aerr, tt.wantStatus)
			}
			switch {
			case tt.wantRelease && (len(released) != 1 || released[0] != x.id):
				t.Fatalf("released %v, want [%s]", released, x.id)
			case !tt.wantRelease && len(released) != 0:
				t.Fatalf("released %v after a refusal", released)
			}
		})
	}
}

// The rules before reserve refuse what they must, each with its own answer, and
// admit stops at the first refusal: nothing after it runs.
func TestAdmissionRulesRefuse(t *testing.T) {
	limits := func(o *Options) { o.MaxBodyBytes, o.MaxMessages, o.MaxMessageBytes = 2048, 2, 100 }
	twoMessages := `{"role":"user","content":"a"},{"role":"user","content":"b"}`
	tests := []struct {
		name       string
		key        string
		body       string
		wantStatus int
		wantCode   string
		wantParam  string
	}{
		{name: "no key", body: chatBody("gpt-4o-mini", false, ""), wantStatus: 401, wantCode: "invalid_api_key"},
		{name: "unknown key", key: "sk-cg-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", body: chatBody("gpt-4o-mini", false, ""), wantStatus: 401, wantCode: "invalid_api_key"},
		{name: "body over the limit", key: ruleKey, body: chatBody("gpt-4o-mini", false, `"user":"`+strings.Repeat("x", 3000)+`"`), wantStatus: 413, wantCode: "request_too_large"},
		{name: "invalid body", key: ruleKey, body: `{"model":"gpt-4o-mini","messages":[]}`, wantStatus: 400, wantParam: "messages"},
		{name: "too many messages", key: ruleKey, body: `{"model":"gpt-4o-mini","messages":[` + twoMessages + `,{"role":"user","content":"c"}]}`, wantStatus: 400, wantCode: "array_above_max_length", wantParam: "messages"},
		{name: "message too long", key: ruleKey, body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("y", 200) + `"}]}`, wantStatus: 400, wantCode: "string_above_max_length", wantParam: "messages"},
		{name: "unpriced model", key: ruleKey, body: chatBody("gpt-imaginary", false, ""), wantStatus: 400, wantCode: "model_not_found", wantParam: "model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ledger := &billingtest.Ledger{ReserveFunc: func(context.Context, billing.ReserveRequest) (billing.Reservation, error) {
				t.Fatal("a refused request reached reserve")
				return billing.Reservation{}, nil
			}}
			p := ruleProxy(t, ledger, true, limits)
			x := ruleExchange(p, "/v1/chat/completions", tc.body)
			x.in.Header.Del("Authorization")
			if tc.key != "" {
				x.in.Header.Set("Authorization", "Bearer "+tc.key)
			}
			if tc.key == "" || tc.key != ruleKey {
				x.in.Body = io.NopCloser(failingReader{t})
			}
			aerr := p.admit(x)
			if aerr == nil || aerr.status != tc.wantStatus || aerr.code != tc.wantCode || aerr.param != tc.wantParam || aerr.message == "" {
				t.Fatalf("got %+v, want %d code %q param %q", aerr, tc.wantStatus, tc.wantCode, tc.wantParam)
			}
		})
	}
}

// failingReader fails the test when read: the body of an unauthenticated request
// is never read.
type failingReader struct{ t *testing.T }

func (f failingReader) Read([]byte) (int, error) {
	f.t.Error("the body of an unauthenticated request was read")
	return 0, errors.New("read")
}

// prepareForward sends the app's body byte for byte, or rewritten with the lowered
// cap and the stream usage the proxy needs, with a matching length.
func TestPrepareForward(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		clamped int64
		want    string
	}{
		{name: "nothing to change", body: chatBody("gpt-4o-mini", false, `"max_tokens":10`), want: chatBody("gpt-4o-mini", false, `"max_tokens":10`)},
		{name: "cap lowered", body: chatBody("gpt-4o-mini", false, `"max_tokens":10`), clamped: 7, want: chatBody("gpt-4o-mini", false, `"max_tokens":7`)},
		{name: "stream usage asked", body: chatBody("gpt-4o-mini", true, ""), want: chatBody("gpt-4o-mini", true, `"stream_options":{"include_usage":true}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ruleProxy(t, &billingtest.Ledger{}, true)
			x := ruleExchange(p, "/v1/chat/completions", tc.body)
			runRules(t, p, x, (*Proxy).authenticateKey, (*Proxy).readBody, (*Proxy).parseBody)
			x.in.Header.Set("Content-Length", "1")
			x.clampedTo = tc.clamped
			if aerr := p.prepareForward(x); aerr != nil {
				t.Fatal(aerr.message)
			}
			got, err := io.ReadAll(x.in.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want || x.in.ContentLength != int64(len(tc.want)) || x.in.Header.Get("Content-Length") != "" {
				t.Fatalf("forwarded %d bytes (Content-Length header %q):\n%s\nwant\n%s", x.in.ContentLength, x.in.Header.Get("Content-Length"), got, tc.want)
			}
		})
	}
}

// The recorder times the first byte on the proxy's clock, like everything else.
func TestRecorderUsesTheProxyClock(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := recorder{ResponseWriter: httptest.NewRecorder(), now: func() time.Time { return at }}
	if _, err := rec.Write(nil); err != nil || !rec.firstWrite.IsZero() {
		t.Fatalf("an empty write set the first byte's time: %v %v", rec.firstWrite, err)
	}
	if _, err := rec.Write([]byte("data: {}\n\n")); err != nil {
		t.Fatal(err)
	}
	at = at.Add(time.Hour)
	if _, err := rec.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC); !rec.firstWrite.Equal(want) || rec.status != http.StatusOK {
		t.Fatalf("first write at %v (status %d), want %v", rec.firstWrite, rec.status, want)
	}
}
